"""Go ``text/template`` engine and docker/cli ``--format`` conventions.

Pure Python, stdlib only, with nothing heavier than ``sys`` imported at module
level: ``dockyard version --format ...`` has to start quickly.

Public API
----------
``render(text, data, *, name="", funcs=None, missingkey="default") -> str``
    Parse and execute a template once.
``parse(text, *, name="", funcs=None, missingkey="default") -> Template``
    Parse once; ``Template.execute(data) -> str`` many times.
``format_rows(fmt, rows, headers=None, *, defaults=None, funcs=None) -> str``
    docker's list commands (``ps``, ``images``, ``history`` ...): handles the
    ``table`` prefix (header row + tabwriter alignment), ``json`` shorthand and
    literal ``\\t``/``\\n`` escapes exactly like docker/cli's ``formatter.Context``.
``format_one(fmt, obj, *, name="", funcs=None, missingkey="default") -> str``
    ``inspect``/``version``/``info``: one object's output followed by ``"\\n"``.
``tabwrite(text, minwidth=10, tabwidth=1, padding=3, padchar=" ") -> str``
    Go ``text/tabwriter`` (docker's fork: East-Asian wide runes count as 2).
``TemplateError``
    ``str(e)`` is Go's message (``template: :1: function "foo" not defined``);
    ``e.docker_message`` adds docker's ``template parsing error: `` prefix;
    ``e.kind`` is ``"parse"`` or ``"exec"``; ``e.partial`` is the output Go
    would already have written before an execution error.

Data model
----------
Go structs and maps both arrive as ``dict``: a missing key behaves like a
missing map key (``<no value>``, or an error with ``missingkey="error"``,
which is what ``docker inspect`` uses for its raw-JSON fallback).  ``None`` is
a nil interface (``<nil>`` inside printed containers, ``<no value>`` when it
is the result of an action, ``nil pointer evaluating interface {}.X`` when a
field is taken from it).  Other objects are structs: attributes are fields,
and callables (methods, zero-arg functions) are invoked with the action's
arguments.  Dict key order is kept for ``json`` (build dicts in Go struct
order, and sort real maps yourself: Go sorts map keys); ``{{.}}`` of a dict
prints Go map syntax with sorted keys.  ``{{range}}`` over a dict iterates in
sorted key order like Go.  Functions are lenient about argument types where
Go would demand e.g. ``[]string`` (Python values carry no static type).

docker/cli behaviour reproduced here (read from docker/cli sources)
------------------------------------------------------------------
* ``formatter.Context.preFormat``: a ``table`` prefix is cut off, ``json``
  becomes ``{{json .}}``, the result is trimmed of spaces and the two-char
  sequences ``\\t`` and ``\\n`` become a real tab/newline - for every format,
  not only tables.
* Parse *and* execution errors are wrapped as ``template parsing error: ...``.
* Exit codes: ``docker inspect``/``docker version`` exit 64 on a template
  *parse* error (``cli.StatusError{StatusCode: 64}``); execution errors and
  any error from the list commands (``ps``/``images``/...) exit 1.  The
  ``version`` command names its template ``"version"`` so its messages read
  ``template: version:1: ...``; elsewhere the name is empty (``template: :1:``).
* Tables: rows go through ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``; the
  header is the same template executed on the header map with json/split/
  join/title/lower/upper/truncate replaced by identity functions, and errors
  while rendering the header are ignored.  ``docker version`` pipes its output
  through ``tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)`` and adds ``"\\n"``.
* ``docker inspect -f``: each element's output plus ``"\\n"``; with no element
  at all a single ``"\\n"`` is written.

Modules
-------
``lexer`` -> ``parser`` (the tree in ``nodes``) -> ``template``, executed by
``exec`` with ``funcs`` (builtins and docker's functions), which print through
``fmt`` and ``jsonenc``; ``formatter`` and ``tabwriter`` are docker/cli's side.
``errors``, ``values`` and ``strconv`` are what they all share.
"""

from __future__ import annotations

from .errors import PARSE_ERROR_EXIT_CODE, TemplateError
from .fmt import go_sprint
from .formatter import FormatError, format_one, format_rows
from .tabwriter import tabwrite
from .template import Template, parse, render

__all__ = [
    "TemplateError",
    "Template",
    "parse",
    "render",
    "format_rows",
    "format_one",
    "tabwrite",
    "go_sprint",
    "PARSE_ERROR_EXIT_CODE",
    "FormatError",
]
