"""docker/cli's formatter conventions: the `table`/`json` format keywords,
`format_rows` for the list commands, `format_one` for inspect/version/info."""

from __future__ import annotations

from .errors import PARSE_ERROR_EXIT_CODE, TemplateError
from .exec import HeaderContext
from .funcs import HEADER_FUNCS
from .tabwriter import tabwrite
from .template import Template


TABLE_FORMAT_KEY = "table"
RAW_FORMAT_KEY = "raw"
JSON_FORMAT_KEY = "json"
JSON_FORMAT = "{{json .}}"


def is_table(fmt: str) -> bool:
    return fmt.startswith(TABLE_FORMAT_KEY)


def pre_format(fmt: str) -> str:
    """docker/cli formatter.Context.preFormat."""
    if fmt.startswith(TABLE_FORMAT_KEY):
        fmt = fmt[len(TABLE_FORMAT_KEY) :]
    elif fmt == JSON_FORMAT_KEY:
        fmt = JSON_FORMAT
    fmt = fmt.strip(" ")
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


class FormatError(TemplateError):
    """A TemplateError whose message already carries docker's prefix.

    ``exit_code`` is what the docker CLI exits with for it: 1 for the list
    commands (formatter.Context), 64 for a parse error in inspect/version."""

    def __init__(self, message: str, kind: str = "parse", partial: str = "", exit_code: int = 1):
        super().__init__(message, kind, partial)
        self._exit_code = exit_code

    @property
    def docker_message(self) -> str:
        return self.message

    @property
    def exit_code(self) -> int:
        return self._exit_code


def format_rows(fmt: str, rows, headers=None, *, defaults=None, funcs=None) -> str:
    """Render list output the way docker/cli's formatter.Context.Write does.

    ``fmt`` is the user's ``--format``; ``defaults`` maps an exact format
    keyword (``"table"``, ``"raw"``, ``""``) to the template it stands for,
    e.g. ``{"": "table {{.ID}}\\t{{.Image}}", "table": "table {{.ID}}\\t{{.Image}}"}``.
    ``headers`` maps field names to column titles (fields not in it are
    upper-cased).  Raises FormatError (message ``template parsing error: ...``)
    for parse and execution errors; docker exits 1 for both here.
    """
    if defaults and fmt in defaults:
        fmt = defaults[fmt]
    final = pre_format(fmt)
    try:
        tmpl = Template(final, funcs=funcs)
    except TemplateError as e:
        raise FormatError(e.docker_message, "parse") from None
    body = []
    for row in rows:
        try:
            body.append(tmpl.execute(row))
        except TemplateError as e:
            raise FormatError(e.docker_message, "exec", "".join(body) + e.partial) from None
        body.append("\n")
    if not is_table(fmt):
        return "".join(body)
    hfuncs = dict(tmpl.funcs)
    hfuncs.update(HEADER_FUNCS)
    try:
        header = tmpl.execute(HeaderContext(headers), funcs=hfuncs)
    except TemplateError as e:
        header = e.partial  # docker ignores errors while rendering the header
    return tabwrite(header + "\n" + "".join(body))


def format_one(fmt: str, obj, *, name: str = "", funcs=None, missingkey: str = "default") -> str:
    """One object (inspect/version/info): ``--format json`` is ``{{json .}}``;
    the output is followed by a newline.  Errors carry the docker prefix."""
    if fmt == JSON_FORMAT_KEY:
        fmt = JSON_FORMAT
    try:
        tmpl = Template(fmt, name=name, funcs=funcs, missingkey=missingkey)
    except TemplateError as e:
        raise FormatError(e.docker_message, "parse", "", PARSE_ERROR_EXIT_CODE) from None
    try:
        return tmpl.execute(obj) + "\n"
    except TemplateError as e:
        raise FormatError(e.docker_message, "exec", e.partial) from None
