"""The Dockerfile line parser: parser directives, line continuations, comments,
JSON (exec) vs shell form and instruction flags, into a tree of `Node`s as
buildkit's `frontend/dockerfile/parser` (v0.8, vendored by Docker 20.10)
builds it; plus heredocs (`RUN <<EOF`), the BuildKit extension, parsed as
newer buildkit does.

`parse()` gives a `ParseResult` whose `ast.children` are one `Node` per
instruction; `dockyard.build.dockerfile.instructions` turns them into typed
instructions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import InvalidParameter
from .shell import Lex, go_quote

__all__ = ["DockerfileParseError", "Heredoc", "Node", "ParseResult", "parse",
           "parse_heredoc", "chomp_heredoc_content", "split_command",
           "extract_builder_flags", "parse_words"]

DEFAULT_ESCAPE_TOKEN = "\\"
MAX_LINE = 65535  # bufio.Scanner's limit, which dockerd reports

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)\Z", re.DOTALL)
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_VALID_DIRECTIVES = ("escape", "syntax")
_HEREDOC_COMMANDS = ("add", "copy", "run")
# Go's unicode.IsSpace over ASCII and Latin-1.
_SPACE = " \t\n\v\f\r\x85\xa0"


class DockerfileParseError(InvalidParameter):
    """A Dockerfile that cannot be parsed; `line` is the 1-based start line
    (0 when the error has no line, as in dockerd)."""

    def __init__(self, message: str, line: int = 0, end_line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.end_line = end_line or line


@dataclass
class Heredoc:
    """One `<<NAME` of an ADD/COPY/RUN line. `expand` is false when the name
    was quoted; `chomp` is `<<-` (leading tabs are stripped)."""
    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    file_descriptor: int = 0


@dataclass
class Node:
    """A parsed line. The root's `children` are the instructions; an
    instruction's `value` is its lowercased name and `next` its arguments as
    a chain (ONBUILD's argument node holds the wrapped instruction in
    `children`)."""
    value: str = ""
    next: Optional["Node"] = None
    children: list["Node"] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)

    def args(self) -> list[str]:
        """The argument values; ONBUILD's wrapped instruction is flattened
        (name, then its arguments), as buildkit's nodeArgs does."""
        out: list[str] = []
        n = self
        while n.next is not None:
            a = n.next
            if not a.children:
                out.append(a.value)
            elif len(a.children) == 1:
                out.append(a.children[0].value)
                out.extend(a.children[0].args())
            n = a
        return out

    @property
    def is_json(self) -> bool:
        return bool(self.attributes.get("json"))

    def dump(self) -> str:
        """buildkit's `Node.Dump` s-expression (its parser test format)."""
        s = self.value
        if self.flags:
            s += " [" + " ".join(go_quote(f) for f in self.flags) + "]"
        for c in self.children:
            s += "(" + c.dump() + ")\n"
        n = self.next
        while n is not None:
            s += " " + (n.dump() if n.children else go_quote(n.value))
            n = n.next
        return s.strip(_SPACE)

    def can_contain_heredoc(self) -> bool:
        node = self
        if node.value == "onbuild" and node.next is not None and node.next.children:
            node = node.next.children[0]
        return node.value in _HEREDOC_COMMANDS and not node.is_json


@dataclass
class ParseResult:
    ast: Node
    escape_token: str
    warnings: list[str]
    # The parser directives found, lowercased names (`escape`, `syntax`).
    directives: dict[str, str] = field(default_factory=dict)


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.set_escape_token(DEFAULT_ESCAPE_TOKEN)

    def set_escape_token(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise DockerfileParseError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape_token = s
        e = re.escape(s)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def possible_directive(self, line: str) -> bool:
        if self.done:
            return False
        m = _DIRECTIVE.match(line)
        if not m:
            self.done = True
            return False
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.seen:
            raise DockerfileParseError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            self.set_escape_token(m.group(2))
        return True


def _lstrip(s: str) -> str:
    return s.lstrip(_SPACE)


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    m = d.continuation.search(line)
    if m:
        return line[:m.start()] + (m.group(1) or ""), False
    return line, True


def parse(text: str | bytes) -> ParseResult:
    """Parse a Dockerfile. Raises DockerfileParseError with dockerd's
    message (`file with no instructions`, `unknown flag`, ...)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    raw = [ln + "\n" for ln in lines]
    if raw and not text.endswith("\n"):
        raw[-1] = raw[-1][:-1]

    d = _Directives()
    root = Node(start_line=-1)
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    i = 0

    def read() -> Optional[str]:
        nonlocal i
        if i >= len(raw):
            return None
        ln = raw[i]
        i += 1
        if len(ln.rstrip("\r\n").encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise DockerfileParseError(
                f"dockerfile line greater than max allowed size of {MAX_LINE}", current)
        return ln

    def process(token: str, strip_left: bool) -> tuple[str, bool]:
        token = token.rstrip("\r\n")
        if strip_left:
            token = _lstrip(token)
        try:
            ok = d.possible_directive(token)
        except DockerfileParseError as e:
            raise DockerfileParseError(e.message, current) from None
        return ("" if _is_comment(token) else token), ok

    while (got := read()) is not None:
        if current == 0 and got.startswith("\ufeff"):
            got = got[1:]
        if _is_comment(got):
            # As buildkit: the first character dropped, indented or not.
            comment = got.rstrip("\r\n")[1:].strip(_SPACE)
            comments = comments + [comment] if comment else []
        line, directive = process(got, True)
        if directive and comments:
            comments = comments[:-1]
        current += 1
        start = current
        line, eol = _trim_continuation(line, d)
        if eol and line == "":
            continue
        parts = [line]
        empty_continuation = False
        while not eol:
            nxt = read()
            if nxt is None:
                break
            cont, _ = process(nxt, False)
            current += 1
            if _is_comment(nxt):
                continue
            if _lstrip(cont) == "":
                empty_continuation = True
                continue
            cont, eol = _trim_continuation(cont, d)
            parts.append(cont)
        line = "".join(parts)
        if empty_continuation:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)
        try:
            child = _node_from_line(line, d, comments)
        except DockerfileParseError as e:
            raise DockerfileParseError(e.message, start, current) from None
        except InvalidParameter as e:
            raise DockerfileParseError(str(e), start, current) from None

        if child.can_contain_heredoc() and "<<" in line:
            try:
                docs = _heredocs_from_line(line)
            except InvalidParameter as e:
                raise DockerfileParseError(str(e), start, current) from None
            for doc in docs:
                content: list[str] = []
                terminated = False
                while (body := read()) is not None:
                    current += 1
                    candidate = body.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(body)
                if not terminated:
                    raise DockerfileParseError("unterminated heredoc", start, current)
                doc.content = "".join(content)
                child.heredocs.append(doc)

        child.start_line, child.end_line = start, current
        if root.start_line < 0:
            root.start_line = start
        root.end_line = current
        root.children.append(child)
        comments = []

    if warnings:
        warnings.append(
            "[WARNING]: Empty continuation lines will become errors in a future release.")
    if root.start_line < 0:
        raise DockerfileParseError("file with no instructions", current)
    if "syntax" in d.seen:
        warnings.append(f"[WARNING]: the syntax parser directive ({d.seen['syntax']}) is ignored: "
                        "this builder has its Dockerfile frontend built in")
    return ParseResult(ast=root, escape_token=d.escape_token, warnings=warnings,
                       directives=dict(d.seen))


# -- one line ---------------------------------------------------------------

def split_command(line: str) -> tuple[str, list[str], str]:
    """(lowercased instruction, its `--flags`, the rest)."""
    cmdline = _WHITESPACE.split(line.strip(_SPACE), maxsplit=1)
    cmd = cmdline[0].lower()
    args, flags = "", []
    if len(cmdline) == 2:
        args, flags = extract_builder_flags(cmdline[1])
    return cmd, flags, args.strip(_SPACE)


def extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words (quotes and `\\` honoured, `--` ends
    them), and the rest of the line."""
    words: list[str] = []
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    phase = IN_SPACES
    word = ""
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos != n else ""
        if phase == IN_SPACES:
            if pos == n:
                break
            if ch in _SPACE:
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = IN_WORD
        if phase in (IN_WORD, IN_QUOTE) and pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == IN_WORD:
            if ch in _SPACE:
                phase = IN_SPACES
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
            pos += 1
            continue
        if phase == IN_QUOTE:
            if ch == quote:
                phase = IN_WORD
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    phase = IN_WORD
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
            pos += 1
    return "", words


def _node_from_line(line: str, d: _Directives, comments: list[str]) -> Node:
    cmd, flags, args = split_command(line)
    fn = _DISPATCH.get(cmd, _parse_ignore)
    nxt, attrs = fn(args, d)
    return Node(value=cmd, original=line, flags=flags, next=nxt, attributes=attrs or {},
                prev_comment=list(comments))


Parsed = tuple[Optional[Node], Optional[dict[str, bool]]]


def _chain(values: list[str]) -> Optional[Node]:
    top: Optional[Node] = None
    prev: Optional[Node] = None
    for v in values:
        node = Node(value=v)
        if prev is None:
            top = node
        else:
            prev.next = node
        prev = node
    return top


def _parse_ignore(rest: str, d: _Directives) -> Parsed:
    return Node(), None


def _parse_sub_command(rest: str, d: _Directives) -> Parsed:
    if rest == "":
        return None, None
    child = _node_from_line(rest, d, [])
    return Node(children=[child]), None


def parse_words(rest: str, escape_token: str = DEFAULT_ESCAPE_TOKEN) -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes (ENV, LABEL
    and ARG arguments are split this way before expansion)."""
    words: list[str] = []
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    phase = IN_SPACES
    word = ""
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos != n else ""
        if phase == IN_SPACES:
            if pos == n:
                break
            if ch in _SPACE:
                pos += 1
                continue
            phase = IN_WORD
        if phase in (IN_WORD, IN_QUOTE) and pos == n:
            if blank_ok or word:
                words.append(word)
            break
        if phase == IN_WORD:
            if ch in _SPACE:
                phase = IN_SPACES
                if blank_ok or word:
                    words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
            if ch == escape_token:
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
            pos += 1
            continue
        if phase == IN_QUOTE:
            if ch == quote:
                phase = IN_WORD
            if ch == escape_token and quote != "'":
                if pos + 1 == n:
                    phase = IN_WORD
                    pos += 1
                    continue
                pos += 1
                word += ch
                ch = rest[pos]
            word += ch
            pos += 1
    return words


def _parse_name_val(rest: str, key: str, d: _Directives) -> Optional[Node]:
    words = parse_words(rest, d.escape_token)
    if not words:
        return None
    if "=" not in words[0]:
        # Legacy `ENV key value...`: the value is the rest of the line.
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileParseError(f"{key} must have two arguments")
        return _chain([parts[0], parts[1]])
    values: list[str] = []
    for w in words:
        if "=" not in w:
            raise DockerfileParseError(
                f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        values += [k, v]
    return _chain(values)


def _parse_env(rest: str, d: _Directives) -> Parsed:
    return _parse_name_val(rest, "ENV", d), None


def _parse_label(rest: str, d: _Directives) -> Parsed:
    return _parse_name_val(rest, "LABEL", d), None


def _parse_name_or_name_val(rest: str, d: _Directives) -> Parsed:
    return _chain(parse_words(rest, d.escape_token)), None


def _parse_strings_whitespace_delimited(rest: str, d: _Directives) -> Parsed:
    if rest == "":
        return None, None
    return _chain(_WHITESPACE.split(rest)), None


def _parse_string(rest: str, d: _Directives) -> Parsed:
    if rest == "":
        return None, None
    return Node(value=rest), None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_no_constant)


class _NotStringArray(DockerfileParseError):
    pass


def _parse_json(rest: str) -> Parsed:
    rest = _lstrip(rest)
    if not rest.startswith("["):
        raise ValueError("not JSON")
    # Go's json.Decoder reads one value and ignores what follows it; it knows
    # no NaN or Infinity.
    value, _ = _JSON.raw_decode(rest)
    if not isinstance(value, list):
        raise ValueError("not an array")
    for v in value:
        if not isinstance(v, str):
            raise _NotStringArray(
                "when using JSON array syntax, arrays must be comprised of strings only")
    return _chain(value), {"json": True}


def _parse_maybe_json(rest: str, d: _Directives) -> Parsed:
    if rest == "":
        return None, None
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return Node(value=rest), None


def _parse_maybe_json_to_list(rest: str, d: _Directives) -> Parsed:
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return _parse_strings_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: _Directives) -> Parsed:
    sep = 0
    while sep < len(rest) and rest[sep] not in _SPACE:
        sep += 1
    nxt = sep
    while nxt < len(rest) and rest[nxt] in _SPACE:
        nxt += 1
    if sep == 0:
        return None, None
    cmd, attrs = _parse_maybe_json(rest[nxt:], d)
    return Node(value=rest[:sep], next=cmd), attrs


_DISPATCH = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_strings_whitespace_delimited,
    "from": _parse_strings_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


# -- heredocs ----------------------------------------------------------------

def parse_heredoc(src: str) -> Optional[Heredoc]:
    """The heredoc a word like `<<EOF`, `<<-"EOF"` or `3<<EOF` opens, else None."""
    m = _HEREDOC.match(src)
    if not m:
        return None
    fd = int(m.group(1)) if m.group(1) else 0
    chomp = m.group(2) == "-"
    rest = m.group(3)
    if not rest:
        return None
    words = Lex(skip_unset_env=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lex(skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != len(words):
        raise InvalidParameter(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word = words[0]
    quotes = word.count("'") + word.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=word, expand=quotes == raw_quotes, chomp=chomp, file_descriptor=fd)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = Lex(raw_quotes=True, raw_escapes=True, skip_unset_env=True, heredocs=True)
    try:
        words = lex.process_words(line, {})
    except InvalidParameter:
        words = []
    return [h for w in words if (h := parse_heredoc(w)) is not None]


def chomp_heredoc_content(src: str) -> str:
    """`<<-` content: leading tabs removed from every line."""
    return _LEADING_TABS.sub("", src)
