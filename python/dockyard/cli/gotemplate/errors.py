"""Template errors: `TemplateError` (Go's message, docker's exit code) and the
internal ones the parser, the evaluator and the template functions raise."""

from __future__ import annotations

#: exit status docker's inspect/version use for a template parse error
PARSE_ERROR_EXIT_CODE = 64


class TemplateError(Exception):
    """A Go-style template error (parse or execution)."""

    def __init__(self, message: str, kind: str = "parse", partial: str = ""):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.partial = partial

    @property
    def docker_message(self) -> str:
        return "template parsing error: " + self.message

    @property
    def exit_code(self) -> int:
        """Exit status docker inspect/version would use."""
        return PARSE_ERROR_EXIT_CODE if self.kind == "parse" else 1

    def __str__(self) -> str:
        return self.message


class ExecError(Exception):
    """An execution error, message already Go's; Template.execute wraps it."""


class FuncError(Exception):
    """Raised by template functions; becomes 'error calling NAME: msg'."""


class ParseError(Exception):
    """A parse error, message already Go's; Template() wraps it."""
