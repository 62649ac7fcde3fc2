"""Formatting glue for commands: `--format` templates (Go text/template, see
`gotemplate/`), tables, and the `--format json` shorthand."""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any


def print_rows(fmt: str, rows: list[Any], headers: dict[str, str]) -> None:
    from .gotemplate import TemplateError, format_rows

    try:
        out = format_rows(fmt, rows, headers)
    except TemplateError as e:
        print(getattr(e, "docker_message", str(e)), file=sys.stderr)
        raise SystemExit(getattr(e, "exit_code", 1)) from None
    sys.stdout.write(out)


def print_one(fmt: str, obj: Any, name: str = "") -> None:
    from .gotemplate import TemplateError, format_one

    try:
        out = format_one(fmt, obj, name=name)
    except TemplateError as e:
        print(getattr(e, "docker_message", str(e)), file=sys.stderr)
        raise SystemExit(getattr(e, "exit_code", 1)) from None
    sys.stdout.write(out)


def print_json_indent(objs: list[Any]) -> None:
    import json

    text = json.dumps(objs, indent=4, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    sys.stdout.write(text + "\n")
