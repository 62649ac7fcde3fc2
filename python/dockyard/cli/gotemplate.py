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
"""

from __future__ import annotations

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
]

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


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class _NoFinal:
    __slots__ = ()


_NOFINAL = _NoFinal()  # "no piped value" marker (Go's missingVal)


class _ExecError(Exception):
    pass


class _FuncError(Exception):
    """Raised by template functions; becomes 'error calling NAME: msg'."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# --------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------

# token types
T_ERROR, T_EOF, T_TEXT, T_LDELIM, T_RDELIM, T_SPACE = range(6)
T_FIELD, T_VAR, T_IDENT, T_DOT, T_STRING, T_RAWSTRING, T_CHARCONST = range(6, 13)
T_NUMBER, T_BOOL, T_NIL, T_PIPE, T_LPAREN, T_RPAREN, T_DECLARE = range(13, 20)
T_ASSIGN, T_CHAR = 20, 21
# keywords
K_BLOCK, K_BREAK, K_CONTINUE, K_DEFINE, K_ELSE, K_END, K_IF = range(30, 37)
K_RANGE, K_TEMPLATE, K_WITH = 37, 38, 39

_KEYWORDS = {
    "block": K_BLOCK,
    "break": K_BREAK,
    "continue": K_CONTINUE,
    "define": K_DEFINE,
    "else": K_ELSE,
    "end": K_END,
    "if": K_IF,
    "range": K_RANGE,
    "template": K_TEMPLATE,
    "with": K_WITH,
    "nil": T_NIL,
}

_SPACE = " \t\r\n"


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _fmt_U(c: str) -> str:
    """Go's %#U of a rune."""
    s = "U+%04X" % ord(c)
    if c.isprintable():
        s += " '" + c + "'"
    return s


class _Tok:
    __slots__ = ("typ", "val", "pos", "line")

    def __init__(self, typ, val, pos, line):
        self.typ = typ
        self.val = val
        self.pos = pos
        self.line = line

    def __str__(self) -> str:  # Go's item.String()
        if self.typ == T_EOF:
            return "EOF"
        if self.typ == T_ERROR:
            return self.val
        if self.typ >= K_BLOCK or self.typ in (T_NIL, T_DOT):
            return "<%s>" % self.val
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _lex(text: str) -> list:
    """Tokenise the whole template; stops after the first error token."""
    toks: list = []
    n = len(text)
    pos = 0
    line = 1

    def emit(typ, start, end):
        nonlocal line
        val = text[start:end]
        toks.append(_Tok(typ, val, start, line))
        line += val.count("\n")

    def error(msg, start_line):
        toks.append(_Tok(T_ERROR, msg, pos, start_line))

    while True:
        # ---- text
        i = text.find("{{", pos)
        if i < 0:
            if pos < n:
                emit(T_TEXT, pos, n)
            toks.append(_Tok(T_EOF, "", n, line))
            return toks
        trim = text.startswith("-", i + 2) and i + 3 < n and text[i + 3] in _SPACE
        end = i
        if trim:
            while end > pos and text[end - 1] in _SPACE:
                end -= 1
        if end > pos:
            emit(T_TEXT, pos, end)
        line += text.count("\n", end, i)
        pos = i
        # ---- left delimiter
        start_line = line
        after = i + 2 + (2 if trim else 0)
        if text.startswith("/*", after):
            # comment
            j = text.find("*/", after + 2)
            if j < 0:
                error("unclosed comment", start_line)
                return toks
            line += text.count("\n", pos, j + 2)
            pos = j + 2
            rtrim = pos + 1 < n and text[pos] in _SPACE and text[pos + 1] == "-" and text.startswith(
                "}}", pos + 2
            )
            if rtrim:
                pos += 4
            elif text.startswith("}}", pos):
                pos += 2
            else:
                error("comment ends before closing delimiter", start_line)
                return toks
            if rtrim:
                while pos < n and text[pos] in _SPACE:
                    line += text[pos] == "\n"
                    pos += 1
            continue
        emit(T_LDELIM, i, i + 2)
        if trim:
            line += text.count("\n", i + 2, after)
        pos = after
        depth = 0
        # ---- inside action
        while True:
            start_line = line
            rtrim = pos + 1 < n and text[pos] in _SPACE and text[pos + 1] == "-" and text.startswith(
                "}}", pos + 2
            )
            if rtrim or text.startswith("}}", pos):
                if depth:
                    error("unclosed left paren", start_line)
                    return toks
                if rtrim:
                    line += text[pos] == "\n"
                    pos += 2
                emit(T_RDELIM, pos, pos + 2)
                pos += 2
                if rtrim:
                    while pos < n and text[pos] in _SPACE:
                        line += text[pos] == "\n"
                        pos += 1
                break
            if pos >= n:
                error("unclosed action", start_line)
                return toks
            c = text[pos]
            if c in _SPACE:
                j = pos
                while j < n and text[j] in _SPACE:
                    j += 1
                # a space followed by "-}}" belongs to the closing delimiter
                if text.startswith("-}}", j):
                    j -= 1
                    if j == pos:
                        continue
                emit(T_SPACE, pos, j)
                pos = j
            elif c == "=":
                emit(T_ASSIGN, pos, pos + 1)
                pos += 1
            elif c == ":":
                if not text.startswith("=", pos + 1):
                    pos += 1
                    error("expected :=", start_line)
                    return toks
                emit(T_DECLARE, pos, pos + 2)
                pos += 2
            elif c == "|":
                emit(T_PIPE, pos, pos + 1)
                pos += 1
            elif c == '"':
                j = pos + 1
                while True:
                    if j >= n or text[j] == "\n":
                        error("unterminated quoted string", start_line)
                        return toks
                    ch = text[j]
                    if ch == "\\":
                        j += 2
                        continue
                    j += 1
                    if ch == '"':
                        break
                emit(T_STRING, pos, j)
                pos = j
            elif c == "`":
                j = text.find("`", pos + 1)
                if j < 0:
                    error("unterminated raw quoted string", start_line)
                    return toks
                emit(T_RAWSTRING, pos, j + 1)
                pos = j + 1
            elif c == "'":
                j = pos + 1
                while True:
                    if j >= n or text[j] == "\n":
                        error("unterminated character constant", start_line)
                        return toks
                    ch = text[j]
                    if ch == "\\":
                        j += 2
                        continue
                    j += 1
                    if ch == "'":
                        break
                emit(T_CHARCONST, pos, j)
                pos = j
            elif c == "$" or (c == "." and not (pos + 1 < n and text[pos + 1].isdigit())):
                j = pos + 1
                while j < n and _is_alnum(text[j]):
                    j += 1
                if c == "." and j == pos + 1:
                    typ = T_DOT
                else:
                    typ = T_VAR if c == "$" else T_FIELD
                if not _at_terminator(text, j):
                    pos = j + 1
                    error("bad character " + _fmt_U(text[j]), start_line)
                    return toks
                emit(typ, pos, j)
                pos = j
            elif c in "+-." or c.isdigit():
                j = _scan_number(text, pos)
                if j < 0:
                    j = -j
                    error("bad number syntax: " + _go_quote(text[pos:j]), start_line)
                    return toks
                emit(T_NUMBER, pos, j)
                pos = j
            elif _is_alnum(c):
                j = pos
                while j < n and _is_alnum(text[j]):
                    j += 1
                if not _at_terminator(text, j):
                    pos = j + 1
                    error("bad character " + _fmt_U(text[j]), start_line)
                    return toks
                word = text[pos:j]
                typ = _KEYWORDS.get(word)
                if typ is None:
                    typ = T_BOOL if word in ("true", "false") else T_IDENT
                emit(typ, pos, j)
                pos = j
            elif c == "(":
                depth += 1
                emit(T_LPAREN, pos, pos + 1)
                pos += 1
            elif c == ")":
                depth -= 1
                emit(T_RPAREN, pos, pos + 1)
                pos += 1
                if depth < 0:
                    error("unexpected right paren " + _fmt_U(c), start_line)
                    return toks
            elif c <= "\x7f" and c.isprintable():
                emit(T_CHAR, pos, pos + 1)
                pos += 1
            else:
                pos += 1
                error("unrecognized character in action: " + _fmt_U(c), start_line)
                return toks


def _at_terminator(text: str, j: int) -> bool:
    if j >= len(text):
        return True
    c = text[j]
    if c in _SPACE or c in ".,|:)(":
        return True
    return text.startswith("}}", j)


def _scan_number(text: str, pos: int) -> int:
    """Return the end of a number literal, or -(end) for bad number syntax."""
    n = len(text)
    j = pos

    def accept(chars):
        nonlocal j
        if j < n and text[j] in chars:
            j += 1
            return True
        return False

    def accept_run(chars):
        nonlocal j
        while j < n and text[j] in chars:
            j += 1

    accept("+-")
    digits = "0123456789_"
    if accept("0"):
        if accept("xX"):
            digits = "0123456789abcdefABCDEF_"
        elif accept("oO"):
            digits = "01234567_"
        elif accept("bB"):
            digits = "01_"
    accept_run(digits)
    if accept("."):
        accept_run(digits)
    if len(digits) == 11 and accept("eE"):
        accept("+-")
        accept_run("0123456789_")
    if len(digits) == 23 and accept("pP"):
        accept("+-")
        accept_run("0123456789_")
    accept("i")
    if j < n and _is_alnum(text[j]):
        return -(j + 1)
    return j


# --------------------------------------------------------------------------
# Parse tree
# --------------------------------------------------------------------------


class _Node:
    __slots__ = ("pos",)


class _ListNode(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos):
        self.pos = pos
        self.nodes = []

    def __str__(self):
        return "".join(str(n) for n in self.nodes)


class _TextNode(_Node):
    __slots__ = ("text",)

    def __init__(self, pos, text):
        self.pos = pos
        self.text = text

    def __str__(self):
        return _go_quote(self.text)


class _PipeNode(_Node):
    __slots__ = ("decl", "is_assign", "cmds", "line")

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line
        self.decl = []
        self.is_assign = False
        self.cmds = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _ActionNode(_Node):
    __slots__ = ("pipe", "line")

    def __init__(self, pos, line, pipe):
        self.pos = pos
        self.line = line
        self.pipe = pipe

    def __str__(self):
        return "{{%s}}" % self.pipe


class _CommandNode(_Node):
    __slots__ = ("args",)

    def __init__(self, pos):
        self.pos = pos
        self.args = []

    def __str__(self):
        return " ".join(
            "(%s)" % a if isinstance(a, _PipeNode) else str(a) for a in self.args
        )


class _IdentNode(_Node):
    __slots__ = ("name",)

    def __init__(self, pos, name):
        self.pos = pos
        self.name = name

    def __str__(self):
        return self.name


class _VarNode(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident  # ["$x", "Field", ...]

    def __str__(self):
        return ".".join(self.ident)


class _DotNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class _NilNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class _FieldNode(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident  # ["A", "B"]

    def __str__(self):
        return "".join("." + i for i in self.ident)


class _ChainNode(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos, node):
        self.pos = pos
        self.node = node
        self.fields = []

    def __str__(self):
        s = "(%s)" % self.node if isinstance(self.node, _PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class _BoolNode(_Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos = pos
        self.value = value

    def __str__(self):
        return "true" if self.value else "false"


class _NumberNode(_Node):
    __slots__ = ("value", "text")

    def __init__(self, pos, value, text):
        self.pos = pos
        self.value = value
        self.text = text

    def __str__(self):
        return self.text


class _StringNode(_Node):
    __slots__ = ("value", "quoted")

    def __init__(self, pos, quoted, value):
        self.pos = pos
        self.quoted = quoted
        self.value = value

    def __str__(self):
        return self.quoted


class _EndNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{end}}"


class _ElseNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{else}}"


class _BranchNode(_Node):
    __slots__ = ("kind", "pipe", "list", "else_list", "line")

    def __init__(self, kind, pipe, lst, else_list):
        self.kind = kind  # "if", "range", "with"
        self.pos = pipe.pos
        self.line = pipe.line
        self.pipe = pipe
        self.list = lst
        self.else_list = else_list

    def __str__(self):
        s = "{{%s %s}}%s" % (self.kind, self.pipe, self.list)
        if self.else_list is not None:
            s += "{{else}}%s" % self.else_list
        return s + "{{end}}"


class _TemplateNode(_Node):
    __slots__ = ("name", "pipe", "line")

    def __init__(self, pos, line, name, pipe):
        self.pos = pos
        self.line = line
        self.name = name
        self.pipe = pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % _go_quote(self.name)
        return "{{template %s %s}}" % (_go_quote(self.name), self.pipe)


class _BreakNode(_Node):
    __slots__ = ("cont",)

    def __init__(self, pos, cont):
        self.pos = pos
        self.cont = cont

    def __str__(self):
        return "{{continue}}" if self.cont else "{{break}}"


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


class _ParseError(Exception):
    pass


class _Parser:
    def __init__(self, text, name, funcs, trees):
        self.text = text
        self.name = name
        self.funcs = funcs
        self.trees = trees  # name -> _ListNode
        self.toks = _lex(text)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.last_line = 1

    # -- token helpers
    def next(self):
        toks = self.toks
        t = toks[self.i] if self.i < len(toks) else toks[-1]
        self.i += 1
        self.last_line = t.line
        return t

    def backup(self, k=1):
        self.i -= k

    def peek(self):
        toks = self.toks
        return toks[self.i] if self.i < len(toks) else toks[-1]

    def next_non_space(self):
        t = self.next()
        while t.typ == T_SPACE:
            t = self.next()
        return t

    def peek_non_space(self):
        t = self.next_non_space()
        self.backup()
        return t

    def errorf(self, msg):
        raise _ParseError("template: %s:%d: %s" % (self.name, self.last_line, msg))

    def unexpected(self, tok, context):
        if tok.typ == T_ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = " in action started at %s:%d" % (self.name, self.action_line)
                if tok.val.startswith(" action") or tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.last_line = tok.line
            self.errorf(tok.val + extra)
        self.errorf("unexpected %s in %s" % (tok, context))

    def expect(self, typ, context):
        t = self.next_non_space()
        if t.typ != typ:
            self.unexpected(t, context)
        return t

    # -- grammar
    def parse(self):
        root = _ListNode(self.peek().pos)
        while self.peek().typ != T_EOF:
            if self.peek().typ == T_LDELIM:
                delim_i = self.i
                self.next()
                if self.next_non_space().typ == K_DEFINE:
                    self.parse_definition()
                    continue
                self.i = delim_i
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf("unexpected %s" % n)
            root.nodes.append(n)
        return root

    def parse_definition(self):
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (T_STRING, T_RAWSTRING):
            self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(T_RDELIM, context)
        saved_vars = self.vars
        self.vars = ["$"]
        lst, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, _EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add_tree(name, lst)

    def add_tree(self, name, lst):
        old = self.trees.get(name)
        if old is None or _is_empty_tree(old):
            self.trees[name] = lst
        elif not _is_empty_tree(lst):
            self.errorf("template: multiple definition of template %s" % _go_quote(name))

    def item_list(self):
        lst = _ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != T_EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.typ == T_TEXT:
            return _TextNode(tok.pos, tok.val)
        if tok.typ == T_LDELIM:
            saved = self.action_line
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = saved
        self.unexpected(tok, "input")

    def action(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == K_BLOCK:
            return self.block_control()
        if typ in (K_BREAK, K_CONTINUE):
            return self.break_control(tok)
        if typ == K_ELSE:
            return self.else_control()
        if typ == K_END:
            return _EndNode(self.expect(T_RDELIM, "end").pos)
        if typ == K_IF:
            return self.control("if")
        if typ == K_RANGE:
            return self.control("range")
        if typ == K_TEMPLATE:
            return self.template_control()
        if typ == K_WITH:
            return self.control("with")
        self.backup()
        tok = self.peek()
        return _ActionNode(tok.pos, tok.line, self.pipeline("command", T_RDELIM))

    def break_control(self, tok):
        cont = tok.typ == K_CONTINUE
        word = "{{continue}}" if cont else "{{break}}"
        t = self.next_non_space()
        if t.typ != T_RDELIM:
            self.unexpected(t, word)
        if self.range_depth == 0:
            self.errorf("%s outside {{range}}" % word)
        return _BreakNode(tok.pos, cont)

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in (K_IF, K_WITH):
            # "{{else if ...": rewritten to {{else}}{{if ...}} by control()
            return _ElseNode(peek.pos)
        tok = self.expect(T_RDELIM, "else")
        return _ElseNode(tok.pos)

    def control(self, context):
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context, T_RDELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _ElseNode):
                p = self.peek()
                if (context == "if" and p.typ == K_IF) or (context == "with" and p.typ == K_WITH):
                    self.next()
                    else_list = _ListNode(nxt.pos)
                    else_list.nodes.append(self.control(context))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf("expected end; found %s" % nxt)
            return _BranchNode(context, pipe, lst, else_list)
        finally:
            del self.vars[nvars:]

    def template_control(self):
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != T_RDELIM:
            self.backup()
            pipe = self.pipeline(context, T_RDELIM)
        return _TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok, context):
        if tok.typ in (T_STRING, T_RAWSTRING):
            return self.unquote(tok)
        self.unexpected(tok, context)

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, T_RDELIM)
        saved_vars, saved_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        lst, end = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if not isinstance(end, _EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add_tree(name, lst)
        return _TemplateNode(tok.pos, tok.line, name, pipe)

    def pipeline(self, context, end):
        tok = self.peek_non_space()
        pipe = _PipeNode(tok.pos, tok.line)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != T_VAR:
                break
            start = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (T_ASSIGN, T_DECLARE):
                pipe.is_assign = nxt.typ == T_ASSIGN
                self.next_non_space()
                pipe.decl.append(_VarNode(v.pos, [v.val]))
                self.vars.append(v.val)
            elif nxt.typ == T_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_VarNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T_VAR, T_RDELIM, T_RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf("too many declarations in %s" % context)
            else:
                self.i = start
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not pipe.cmds:
                    self.errorf("missing value for %s" % context)
                for k, c in enumerate(pipe.cmds[1:]):
                    if isinstance(
                        c.args[0], (_BoolNode, _DotNode, _NilNode, _NumberNode, _StringNode)
                    ):
                        self.errorf("non executable command in pipeline stage %d" % (k + 2))
                return pipe
            if tok.typ in (
                T_BOOL,
                T_CHARCONST,
                T_DOT,
                T_FIELD,
                T_IDENT,
                T_NUMBER,
                T_NIL,
                T_RAWSTRING,
                T_STRING,
                T_VAR,
                T_LPAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def command(self):
        cmd = _CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            tok = self.next()
            if tok.typ == T_SPACE:
                continue
            if tok.typ in (T_RDELIM, T_RPAREN):
                self.backup()
            elif tok.typ == T_PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T_FIELD:
            chain = _ChainNode(self.peek().pos, node)
            while self.peek().typ == T_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _FieldNode):
                return _FieldNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, _VarNode):
                return _VarNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, (_BoolNode, _StringNode, _NumberNode, _NilNode, _DotNode)):
                self.errorf("unexpected . after term %s" % _go_quote(str(node)))
            return chain
        return node

    def term(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == T_IDENT:
            if tok.val not in self.funcs:
                self.errorf("function %s not defined" % _go_quote(tok.val))
            return _IdentNode(tok.pos, tok.val)
        if typ == T_DOT:
            return _DotNode(tok.pos)
        if typ == T_NIL:
            return _NilNode(tok.pos)
        if typ == T_VAR:
            if tok.val not in self.vars:
                self.errorf("undefined variable %s" % _go_quote(tok.val))
            return _VarNode(tok.pos, [tok.val])
        if typ == T_FIELD:
            return _FieldNode(tok.pos, [tok.val[1:]])
        if typ == T_BOOL:
            return _BoolNode(tok.pos, tok.val == "true")
        if typ in (T_NUMBER, T_CHARCONST):
            return _NumberNode(tok.pos, self.number(tok), tok.val)
        if typ == T_LPAREN:
            return self.pipeline("parenthesized pipeline", T_RPAREN)
        if typ in (T_STRING, T_RAWSTRING):
            return _StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def unquote(self, tok):
        s = tok.val
        if tok.typ == T_RAWSTRING:
            return s[1:-1]
        try:
            return _go_unquote(s)
        except ValueError:
            self.errorf("invalid syntax")

    def number(self, tok):
        text = tok.val
        if tok.typ == T_CHARCONST:
            try:
                r = _go_unquote('"' + text[1:-1] + '"') if text[1:-1] != '"' else '"'
            except ValueError:
                r = ""
            if len(r) != 1:
                self.errorf("malformed character constant: %s" % text)
            return ord(r)
        v = _parse_go_number(text)
        if isinstance(v, int) and not -(2**63) <= v < 2**64:
            self.errorf("integer overflow: %s" % _go_quote(text))
        if v is None:
            self.errorf("illegal number syntax: %s" % _go_quote(text))
        return v


def _is_empty_tree(lst) -> bool:
    for n in lst.nodes:
        if isinstance(n, _TextNode):
            if n.text.strip(_SPACE):
                return False
        else:
            return False
    return True


def _parse_go_number(text: str):
    """int or float per Go's idealConstant rules; None when invalid."""
    if text.endswith("i"):
        return None  # complex numbers are not supported
    t = text
    sign = 1
    if t[:1] in "+-":
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    if not t or t.startswith("_") or t.endswith("_") or "__" in t:
        return None
    low = t.lower()
    is_hex = low.startswith("0x")
    try:
        if is_hex:
            if "p" in low or "." in low:
                return sign * float.fromhex(t.replace("_", ""))
            return sign * int(t[2:].replace("_", ""), 16)
        if low.startswith("0o"):
            return sign * int(t[2:].replace("_", ""), 8)
        if low.startswith("0b"):
            return sign * int(t[2:].replace("_", ""), 2)
        if any(ch in low for ch in ".e"):
            return sign * float(t.replace("_", ""))
        if len(t) > 1 and t[0] == "0":
            return sign * int(t[1:].replace("_", ""), 8)
        return sign * int(t.replace("_", ""))
    except ValueError:
        return None


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def _go_unquote(s: str) -> str:
    """strconv.Unquote for a double-quoted Go string literal."""
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError(s)
    body = s[1:-1]
    if "\\" not in body:
        if '"' in body or "\n" in body:
            raise ValueError(s)
        return body
    out = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            if c in '"\n':
                raise ValueError(s)
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError(s)
        e = body[i + 1]
        if e in _ESCAPES and e != "'":
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            k = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i + 2 : i + 2 + k]
            if len(hexs) != k or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise ValueError(s)
            v = int(hexs, 16)
            if e == "x":
                out.append(chr(v))  # a byte; exact only for ASCII
            else:
                if v > 0x10FFFF or 0xD800 <= v < 0xE000:
                    raise ValueError(s)
                out.append(chr(v))
            i += 2 + k
        elif e in "01234567":
            octs = body[i + 1 : i + 4]
            if len(octs) != 3 or any(o not in "01234567" for o in octs):
                raise ValueError(s)
            v = int(octs, 8)
            if v > 255:
                raise ValueError(s)
            out.append(chr(v))
            i += 4
        else:
            raise ValueError(s)
    return "".join(out)


def _go_quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote / QuoteToASCII."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif 0x20 <= o < 0x7F:
            out.append(c)
        elif c == "\a":
            out.append("\\a")
        elif c == "\b":
            out.append("\\b")
        elif c == "\f":
            out.append("\\f")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\v":
            out.append("\\v")
        elif o < 0x80 or (not ascii_only and c.isprintable() and o >= 0xA0):
            if o < 0x80:
                out.append("\\x%02x" % o)
            else:
                out.append(c)
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------
# Go value printing (fmt)
# --------------------------------------------------------------------------


def _type_name(v) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if callable(v):
        return "func"
    return type(v).__name__


def _shortest(x: float):
    """Shortest round-trip decimal digits and Go decimal-point position."""
    r = repr(abs(x))
    if "e" in r:
        mant, exp_s = r.split("e")
        exp = int(exp_s)
    else:
        mant, exp = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    digits = ip + fp
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e_short(digits: str, dp: int, e: str = "e") -> str:
    s = digits[0]
    if len(digits) > 1:
        s += "." + digits[1:]
    exp = dp - 1 if digits != "0" else 0
    return "%s%s%s%02d" % (s, e, "-" if exp < 0 else "+", abs(exp))


def _fmt_f_short(digits: str, dp: int) -> str:
    if digits == "0":
        return "0"
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _special_float(x: float):
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    return None


def go_float(x: float, verb: str = "g") -> str:
    """Go's %v/%g (shortest) rendering of a float64."""
    sp = _special_float(x)
    if sp:
        return sp
    digits, dp = _shortest(x)
    sign = "-" if (x < 0 or (x == 0 and str(x).startswith("-"))) else ""
    exp = dp - 1
    # strconv 'g' with shortest precision switches to %e when the exponent
    # is < -4 or >= 6 (eprec is forced to 6 for the shortest form)
    if digits != "0" and (exp < -4 or exp >= 6):
        return sign + _fmt_e_short(digits, dp, "E" if verb == "G" else "e")
    return sign + _fmt_f_short(digits, dp)


def _json_float(x: float) -> str:
    if _special_float(x):
        raise ValueError("json: unsupported value: " + _special_float(x))
    digits, dp = _shortest(x)
    sign = "-" if repr(x).startswith("-") else ""
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = _fmt_e_short(digits, dp)
        if s[-4:-1] == "e-0":  # Go cleans e-07 up to e-7 (but keeps e+21)
            s = s[:-2] + s[-1]
        return sign + s
    return sign + _fmt_f_short(digits, dp)


def go_sprint(v, top: bool = True) -> str:
    """fmt's %v of a value (the way text/template prints action results)."""
    if v is None or v is MISSING:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(
            go_sprint(k, False) + ":" + go_sprint(v[k], False) for k in _sorted_keys(v)
        ) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint(e, False) for e in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in v) + "]"
    return str(v)


def _sorted_keys(d: dict):
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


# --------------------------------------------------------------------------
# printf
# --------------------------------------------------------------------------


class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec")

    def __init__(self):
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width = None
        self.prec = None


def _pad(s: str, spec: _Spec, numeric: bool = False) -> str:
    w = spec.width
    if w is None or len(s) >= w:
        return s
    fill = w - len(s)
    if spec.minus:
        return s + " " * fill
    if spec.zero and numeric:
        if s[:1] in "+- ":
            return s[0] + "0" * fill + s[1:]
        return "0" * fill + s
    if spec.zero and not numeric:
        return "0" * fill + s
    return " " * fill + s


def _bad_verb(verb: str, v) -> str:
    if v is None or v is MISSING:
        return "%!" + verb + "(<nil>)"
    return "%!" + verb + "(" + _type_name(v) + "=" + go_sprint(v) + ")"


def _fmt_int(v: int, verb: str, spec: _Spec) -> str:
    neg = v < 0
    a = -v if neg else v
    if verb in "dv":
        s = str(a)
    elif verb == "x":
        s = "%x" % a
        if spec.sharp:
            s = "0x" + s
    elif verb == "X":
        s = "%X" % a
        if spec.sharp:
            s = "0X" + s
    elif verb == "o":
        s = "%o" % a
        if spec.sharp:
            s = "0" + s
    elif verb == "O":
        s = "0o%o" % a
    elif verb == "b":
        s = "{:b}".format(a)
    elif verb == "c":
        return _pad(chr(v), spec)
    elif verb == "q":
        return _pad("'" + _go_quote(chr(v))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", spec)
    elif verb == "U":
        s = "U+%04X" % v
        if spec.sharp:
            s += " '" + chr(v) + "'"
        return _pad(s, spec)
    else:
        return _bad_verb(verb, v)
    if spec.prec is not None and len(s) < spec.prec:
        s = "0" * (spec.prec - len(s)) + s
    if neg:
        s = "-" + s
    elif spec.plus:
        s = "+" + s
    elif spec.space:
        s = " " + s
    return _pad(s, spec, numeric=spec.prec is None)


def _fmt_float(v: float, verb: str, spec: _Spec) -> str:
    sp = _special_float(v)
    if sp:
        s = sp
        if s == "+Inf" and not spec.plus:
            s = "Inf"
        return _pad(s, spec)
    if verb in "vgG" and spec.prec is None:
        s = go_float(v, "G" if verb == "G" else "g")
    elif verb in "vgG":
        s = ("%." + str(spec.prec) + ("G" if verb == "G" else "g")) % v
    elif verb in "eE":
        s = ("%." + str(6 if spec.prec is None else spec.prec) + verb) % v
    elif verb in "fF":
        s = ("%." + str(6 if spec.prec is None else spec.prec) + "f") % v
    else:
        return _bad_verb(verb, v)
    if not s.startswith("-"):
        if spec.plus:
            s = "+" + s
        elif spec.space:
            s = " " + s
    return _pad(s, spec, numeric=True)


def _fmt_str(v: str, verb: str, spec: _Spec) -> str:
    if spec.prec is not None and verb in "sqv":
        v = v[: spec.prec]
    if verb in "sv":
        return _pad(v, spec)
    if verb == "q":
        if spec.sharp and "`" not in v and all(c.isprintable() or c == "\t" for c in v):
            return _pad("`" + v + "`", spec)
        return _pad(_go_quote(v, ascii_only=spec.plus), spec)
    if verb in "xX":
        h = v.encode().hex()
        if verb == "X":
            h = h.upper()
        if spec.space:
            h = " ".join(h[i : i + 2] for i in range(0, len(h), 2))
        return _pad(h, spec)
    return _bad_verb(verb, v)


def _fmt_value(v, verb: str, spec: _Spec, depth: int = 0) -> str:
    if verb == "T":
        return _pad(_type_name(v), spec)
    if v is None or v is MISSING:
        if depth == 0 and verb != "v":
            return _bad_verb(verb, None)
        return _pad("<nil>", spec)
    if isinstance(v, bool):
        if verb in "tv":
            return _pad("true" if v else "false", spec)
        return _bad_verb(verb, v)
    if isinstance(v, int):
        return _fmt_int(v, verb, spec)
    if isinstance(v, float):
        return _fmt_float(v, verb, spec)
    if isinstance(v, str):
        return _fmt_str(v, verb, spec)
    if isinstance(v, dict):
        return "map[" + " ".join(
            _fmt_value(k, verb, spec, depth + 1) + ":" + _fmt_value(v[k], verb, spec, depth + 1)
            for k in _sorted_keys(v)
        ) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_value(e, verb, spec, depth + 1) for e in v) + "]"
    if verb in "vs":
        return _pad(str(v), spec)
    return _bad_verb(verb, v)


def go_sprintf(fmt: str, args: list) -> str:
    out = []
    n = len(fmt)
    i = 0
    argi = 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "-+# 0":
            c = fmt[i]
            if c == "-":
                spec.minus = True
            elif c == "+":
                spec.plus = True
            elif c == "#":
                spec.sharp = True
            elif c == " ":
                spec.space = True
            else:
                spec.zero = True
            i += 1
        # width
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                spec.width = args[argi]
                if spec.width < 0:
                    spec.minus = True
                    spec.width = -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            k = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > k:
                spec.width = int(fmt[k:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int):
                    spec.prec = max(args[argi], 0)
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                k = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[k:i]) if i > k else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append("%!" + verb + "(MISSING)")
            continue
        v = args[argi]
        argi += 1
        if spec.minus:
            spec.zero = False
        if verb == "v":
            spec.plus = spec.sharp = False  # %+v / %#v only affect structs
        out.append(_fmt_value(v, verb, spec))
    if argi < len(args):
        extra = []
        for v in args[argi:]:
            if v is None or v is MISSING:
                extra.append("<nil>")
            else:
                extra.append(_type_name(v) + "=" + go_sprint(v))
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


def _sprint(args) -> str:
    out = []
    prev_str = True
    for k, a in enumerate(args):
        is_str = isinstance(a, str)
        if k > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(go_sprint(a))
        prev_str = is_str
    return "".join(out)


# --------------------------------------------------------------------------
# JSON (encoding/json with SetEscapeHTML(false))
# --------------------------------------------------------------------------


def _json_str(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append(
                {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}.get(
                    c, "\\u%04x" % o
                )
            )
        elif o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        elif 0xD800 <= o < 0xE000:
            out.append("\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _json_obj_fields(obj) -> dict:
    """docker's formatter MarshalJSON: exported zero-arg methods, sorted."""
    hook = getattr(obj, "__json__", None)
    if callable(hook):
        return hook()
    m = {}
    for name in sorted(dir(obj)):
        if not name[:1].isupper() or name == "FullHeader":
            continue
        try:
            val = getattr(obj, name)
            if callable(val):
                val = val()
        except Exception:
            continue
        m[name] = val
    return m


def go_json(v) -> str:
    if v is None or v is MISSING:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, dict):
        return "{" + ",".join(_json_str(str(k)) + ":" + go_json(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        import base64

        return '"' + base64.b64encode(bytes(v)).decode() + '"'
    return go_json(_json_obj_fields(v))


# --------------------------------------------------------------------------
# Builtin functions
# --------------------------------------------------------------------------


def _truth(v):
    """Go's isTrue: (truth, ok)."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict, bytes)):
        return bool(v)
    return True


def _basic_kind(v):
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return None


def _fn_eq(a, *bs):
    if not bs:
        raise _FuncError("missing argument for comparison")
    k1 = _basic_kind(a)
    for b in bs:
        k2 = _basic_kind(b)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise _FuncError("incompatible types for comparison")
            truth = False
        elif k1 == "invalid":
            truth = True
        elif k1 is None:
            if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
                raise _FuncError("non-comparable type %s: %s" % (go_sprint(b), _type_name(b)))
            truth = a == b
        else:
            truth = a == b
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(a, b):
    k1 = _basic_kind(a)
    k2 = _basic_kind(b)
    if k1 in (None, "invalid") or k2 in (None, "invalid"):
        raise _FuncError("invalid type for comparison")
    if k1 != k2:
        raise _FuncError("incompatible types for comparison")
    if k1 == "bool":
        raise _FuncError("invalid type for comparison")
    return a < b


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _fn_not(a):
    return not _truth(a)


def _fn_len(v):
    if v is None or v is MISSING:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict, bytes)):
        return len(v)
    raise _FuncError("len of type %s" % _type_name(v))


def _index_int(idx, cap: int) -> int:
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise _FuncError("cannot index slice/array with type %s" % _type_name(idx))
    if idx < 0 or idx >= cap:
        raise _FuncError("index out of range: %d" % idx)
    return idx


def _fn_index(item, *indexes):
    for idx in indexes:
        if item is None or item is MISSING:
            raise _FuncError("index of untyped nil")
        if isinstance(item, (list, tuple)):
            item = item[_index_int(idx, len(item))]
        elif isinstance(item, str):
            b = item.encode()
            item = b[_index_int(idx, len(b))]
        elif isinstance(item, dict):
            if item and not isinstance(idx, type(next(iter(item)))):
                if idx is None or idx is MISSING:
                    raise _FuncError("value is nil; should be of type string")
                raise _FuncError("value has type %s; should be string" % _type_name(idx))
            item = item.get(idx)
        else:
            raise _FuncError("can't index item of type %s" % _type_name(item))
    return item


def _fn_slice(item, *indexes):
    if item is None or item is MISSING:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError("too many slice indexes: %d" % len(indexes))
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq = item.encode()
        is_str = True
    elif isinstance(item, (list, tuple)):
        seq = item
        is_str = False
    else:
        raise _FuncError("can't slice item of type %s" % _type_name(item))
    cap = len(seq)
    idx = [0, len(seq)]
    for k, x in enumerate(indexes):
        idx_v = _index_int(x, cap + 1)
        if k < 2:
            idx[k] = idx_v
    if idx[0] > idx[1]:
        raise _FuncError("invalid slice index: %d > %d" % (idx[0], idx[1]))
    res = seq[idx[0] : idx[1]]
    return res.decode(errors="replace") if is_str else list(res)


def _eval_args_str(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(args)


def _fn_html(*args):
    s = _eval_args_str(args)
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\0", "\ufffd")
    )


def _fn_js(*args):
    s = _eval_args_str(args)
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c in "<>&=":
            out.append("\\u%04X" % ord(c))
        elif ord(c) < 0x20 or (ord(c) >= 0x80 and not c.isprintable()):
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _fn_urlquery(*args):
    from urllib.parse import quote_plus

    return quote_plus(_eval_args_str(args), safe="")


def _fn_print(*args):
    return _sprint(args)


def _fn_println(*args):
    return " ".join(go_sprint(a) for a in args) + "\n"


def _fn_printf(fmt, *args):
    if not isinstance(fmt, str):
        raise _FuncError("wrong type for value; expected string; got %s" % _type_name(fmt))
    return go_sprintf(fmt, list(args))


def _fn_call(fn, *args):
    if fn is None or fn is MISSING:
        raise _FuncError("call of nil")
    if not callable(fn):
        raise _FuncError("non-function of type %s" % _type_name(fn))
    return fn(*args)


def _as_str(v, what="string"):
    if isinstance(v, str):
        return v
    if v is None or v is MISSING:
        return ""
    raise _FuncError("wrong type for value; expected %s; got %s" % (what, _type_name(v)))


def _as_int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise _FuncError("wrong type for value; expected int; got %s" % _type_name(v))
    return v


def _fn_json(v):
    try:
        return go_json(v)
    except ValueError:
        return ""  # docker ignores the encoder's error: empty output


def _fn_split(s, sep):
    s = _as_str(s)
    sep = _as_str(sep)
    if sep == "":
        return list(s)
    return s.split(sep)


def _fn_join(elems, sep):
    sep = _as_str(sep)
    if elems is None or elems is MISSING:
        return ""
    if isinstance(elems, str) or not isinstance(elems, (list, tuple)):
        raise _FuncError("wrong type for value; expected []string; got %s" % _type_name(elems))
    return sep.join(e if isinstance(e, str) else go_sprint(e) for e in elems)


def _title_sep(c: str) -> bool:
    if c <= "\x7f":
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def _fn_title(s):
    s = _as_str(s)
    out = []
    prev = " "
    for c in s:
        out.append(c.upper() if _title_sep(prev) and len(c.upper()) == 1 else c)
        prev = c
    return "".join(out)


def _fn_lower(s):
    return _as_str(s).lower()


def _fn_upper(s):
    return _as_str(s).upper()


def _fn_pad(s, prefix, suffix):
    s = _as_str(s)
    if s == "":
        return s
    return " " * _as_int(prefix) + s + " " * _as_int(suffix)


def _fn_truncate(s, n):
    s = _as_str(s)
    n = _as_int(n)
    if len(s) < n:
        return s
    return s[:n]


def _hdr_identity1(v, *_):
    return v


# name -> (callable, min args, max args or None)
_BUILTINS = {
    "and": (None, 1, None),  # special-cased: short-circuit
    "or": (None, 1, None),
    "not": (_fn_not, 1, 1),
    "len": (_fn_len, 1, 1),
    "index": (_fn_index, 1, None),
    "slice": (_fn_slice, 1, None),
    "print": (_fn_print, 0, None),
    "printf": (_fn_printf, 1, None),
    "println": (_fn_println, 0, None),
    "eq": (_fn_eq, 1, None),
    "ne": (_fn_ne, 2, 2),
    "lt": (_fn_lt, 2, 2),
    "le": (_fn_le, 2, 2),
    "gt": (_fn_gt, 2, 2),
    "ge": (_fn_ge, 2, 2),
    "html": (_fn_html, 0, None),
    "js": (_fn_js, 0, None),
    "urlquery": (_fn_urlquery, 0, None),
    "call": (_fn_call, 1, None),
    # docker/cli templates.basicFunctions
    "json": (_fn_json, 1, 1),
    "split": (_fn_split, 2, 2),
    "join": (_fn_join, 2, 2),
    "title": (_fn_title, 1, 1),
    "lower": (_fn_lower, 1, 1),
    "upper": (_fn_upper, 1, 1),
    "pad": (_fn_pad, 3, 3),
    "truncate": (_fn_truncate, 2, 2),
}

# docker/cli templates.HeaderFunctions: keep the header text intact
_HEADER_FUNCS = {
    "json": (_hdr_identity1, 1, 1),
    "split": (_hdr_identity1, 2, 2),
    "join": (_hdr_identity1, 2, 2),
    "title": (_hdr_identity1, 1, 1),
    "lower": (_hdr_identity1, 1, 1),
    "upper": (_hdr_identity1, 1, 1),
    "truncate": (_hdr_identity1, 2, 2),
}


def _user_funcs(funcs):
    if not funcs:
        return {}
    return {k: (f, 0, None) for k, f in funcs.items()}


# --------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------


class _State:
    __slots__ = ("tmpl", "out", "vars", "node", "exec_name", "depth", "funcs", "no_invoke")

    def __init__(self, tmpl, funcs):
        self.tmpl = tmpl
        self.out = []
        self.vars = []
        self.node = None
        self.exec_name = tmpl.name
        self.depth = 0
        self.funcs = funcs
        self.no_invoke = False

    def at(self, node):
        self.node = node

    def errorf(self, msg):
        node = self.node
        text = self.tmpl.text
        if node is None:
            raise _ExecError("template: %s: %s" % (self.exec_name, msg))
        pos = node.pos
        before = text[:pos]
        nl = before.rfind("\n")
        col = pos if nl < 0 else pos - (nl + 1)
        line = 1 + before.count("\n")
        raise _ExecError(
            "template: %s:%d:%d: executing %s at <%s>: %s"
            % (self.tmpl.name, line, col, _go_quote(self.exec_name), _ctx_str(node), msg)
        )

    # -- variables
    def push(self, name, value):
        self.vars.append([name, value])

    def set_var(self, name, value):
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf("undefined variable: %s" % name)

    def var_value(self, name):
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf("undefined variable: %s" % name)

    # -- walking
    def walk(self, dot, node):
        self.at(node)
        t = type(node)
        if t is _TextNode:
            self.out.append(node.text)
        elif t is _ActionNode:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is _ListNode:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is _BranchNode:
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                val = self.eval_pipeline(dot, node.pipe)
                if _truth(val):
                    self.walk(val if node.kind == "with" else dot, node.list)
                elif node.else_list is not None:
                    self.walk(dot, node.else_list)
                del self.vars[mark:]
        elif t is _TemplateNode:
            self.walk_template(dot, node)
        elif t is _BreakNode:
            raise _Continue() if node.cont else _Break()
        else:
            self.errorf("unknown node: %s" % node)

    def print_value(self, node, val):
        self.at(node)
        if val is MISSING or val is None:
            self.out.append("<no value>")
        elif type(val) is str:
            self.out.append(val)
        else:
            self.out.append(go_sprint(val))

    def walk_range(self, dot, r):
        self.at(r)
        mark0 = len(self.vars)
        val = self.eval_pipeline(dot, r.pipe)
        mark = len(self.vars)
        decl = r.pipe.decl
        items = None
        if val is None or val is MISSING:
            items = ()
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in _sorted_keys(val)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            if val < 0:
                val = 0
            items = [(i, i) for i in range(val)]
            if len(decl) > 1:
                self.errorf("can't use %s to iterate over more than one variable" % go_sprint(val))
        else:
            self.errorf("range can't iterate over %s" % go_sprint(val))
        try:
            for index, elem in items:
                if decl:
                    if r.pipe.is_assign:
                        if len(decl) > 1:
                            self.set_var(decl[0].ident[0], index)
                        else:
                            self.set_var(decl[0].ident[0], elem)
                    else:
                        self.vars[-1][1] = elem
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.vars[-2][1] = index
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    del self.vars[mark:]
        except _Break:
            pass
        if not items and r.else_list is not None:
            self.walk(dot, r.else_list)
        del self.vars[mark0:]

    def walk_template(self, dot, t):
        self.at(t)
        tree = self.tmpl.trees.get(t.name)
        if tree is None:
            self.errorf("template %s not defined" % _go_quote(t.name))
        if self.depth >= 100000:
            self.errorf("exceeded maximum template depth (100000)")
        dot = self.eval_pipeline(dot, t.pipe) if t.pipe is not None else MISSING
        saved = (self.vars, self.exec_name)
        self.vars = [["$", dot]]
        self.exec_name = t.name
        self.depth += 1
        try:
            self.walk(dot, tree)
        finally:
            self.depth -= 1
            self.vars, self.exec_name = saved

    # -- evaluation
    def eval_pipeline(self, dot, pipe):
        if pipe is None:
            return MISSING
        self.at(pipe)
        value = _NOFINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:
                value = MISSING  # nil interface{} becomes the invalid value
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args, final):
        if len(args) > 1 or final is not _NOFINAL:
            self.errorf("can't give argument to non-function %s" % args[0])

    def eval_command(self, dot, cmd, final):
        first = cmd.args[0]
        t = type(first)
        if t is _FieldNode:
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if t is _ChainNode:
            return self.eval_chain(dot, first, cmd.args, final)
        if t is _IdentNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if t is _PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is _VarNode:
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if t is _BoolNode:
            return first.value
        if t is _DotNode:
            return dot
        if t is _NilNode:
            self.errorf("nil is not a command")
        if t is _NumberNode:
            return first.value
        if t is _StringNode:
            return first.value
        self.errorf("can't evaluate command %s" % first)

    def eval_chain(self, dot, chain, args, final):
        self.at(chain)
        if isinstance(chain.node, _NilNode):
            self.errorf("indirection through explicit nil in %s" % chain)
        pipe = self.eval_arg(dot, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot, var, args, final):
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        n = len(ident)
        iface = False
        for k in range(n - 1):
            receiver, iface = self.eval_field(dot, ident[k], node, None, _NOFINAL, receiver, iface)
        return self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)[0]

    def eval_field(self, dot, name, node, args, final, receiver, iface):
        """Returns (value, came_from_container)."""
        if receiver is MISSING:
            if self.tmpl.missingkey == "error":
                self.errorf("nil data; no entry for key %s" % _go_quote(name))
            return MISSING, False
        has_args = (args is not None and len(args) > 1) or final is not _NOFINAL
        if receiver is None:
            self.errorf("nil pointer evaluating interface {}.%s" % name)
        if isinstance(receiver, dict):
            if name in receiver:
                val = receiver[name]
                if callable(val) and not isinstance(val, type) and not self.no_invoke:
                    return self.eval_call(dot, val, name, node, args, final), False
                if has_args:
                    self.errorf("%s is not a method but has arguments" % name)
                return val, True
            if has_args:
                self.errorf("%s is not a method but has arguments" % name)
            mk = self.tmpl.missingkey
            if mk == "error":
                self.errorf("map has no entry for key %s" % _go_quote(name))
            if mk == "zero":
                return None, True
            return MISSING, False
        if isinstance(receiver, _HeaderContext):
            return receiver.header(name), False
        if not isinstance(receiver, (str, int, float, list, tuple, bytes)):
            try:
                val = getattr(receiver, name)
            except AttributeError:
                pass
            except Exception as e:  # property raising
                self.errorf("error calling %s: %s" % (name, e))
            else:
                if callable(val) and not isinstance(val, type):
                    return self.eval_call(dot, val, name, node, args, final), False
                if has_args:
                    self.errorf("%s has arguments but cannot be invoked as function" % name)
                return val, False
        tname = "interface {}" if iface else _type_name(receiver)
        self.errorf("can't evaluate field %s in type %s" % (name, tname))

    def eval_function(self, dot, node, cmd, args, final):
        self.at(node)
        name = node.name
        entry = self.funcs.get(name)
        if entry is None:
            self.errorf("%s is not a defined function" % _go_quote(name))
        fn, lo, hi = entry
        nargs = len(args) - 1 + (0 if final is _NOFINAL else 1)
        if hi is not None and lo == hi and nargs != lo:
            self.errorf("wrong number of args for %s: want %d got %d" % (name, lo, nargs))
        if nargs < lo:
            self.errorf("wrong number of args for %s: want at least %d got %d" % (name, lo, nargs))
        if hi is not None and nargs > hi:
            self.errorf("wrong number of args for %s: want %d got %d" % (name, hi, nargs))
        if fn is None:  # and / or: short-circuit
            want = name == "or"
            v = None
            for a in args[1:]:
                v = self.eval_arg(dot, a)
                if _truth(v) == want:
                    return v
            if final is not _NOFINAL:
                v = final
            return v
        return self.eval_call(dot, fn, name, cmd, args, final)

    def eval_call(self, dot, fn, name, node, args, final):
        if fn is _fn_call and args and len(args) > 1:
            # {{call .F x}}: a function stored in a dict is passed, not invoked
            self.no_invoke = True
            try:
                first = self.eval_arg(dot, args[1])
            finally:
                self.no_invoke = False
            argv = [first] + [self.eval_arg(dot, a) for a in args[2:]]
        else:
            argv = [self.eval_arg(dot, a) for a in (args[1:] if args else ())]
        if final is not _NOFINAL:
            argv.append(final)
        argv = [None if a is MISSING else a for a in argv]
        self.at(node)
        try:
            result = fn(*argv)
        except _FuncError as e:
            self.errorf("error calling %s: %s" % (name, e))
        except (_ExecError, _Break, _Continue):
            raise
        except TypeError as e:
            self.errorf("error calling %s: %s" % (name, e))
        except Exception as e:
            self.errorf("error calling %s: %s" % (name, e))
        return result

    def eval_arg(self, dot, n):
        self.at(n)
        t = type(n)
        if t is _DotNode:
            return dot
        if t is _NilNode:
            return None
        if t is _FieldNode:
            return self.eval_field_chain(dot, dot, n, n.ident, [n], _NOFINAL)
        if t is _VarNode:
            return self.eval_variable(dot, n, [n], _NOFINAL)
        if t is _PipeNode:
            return self.eval_pipeline(dot, n)
        if t is _IdentNode:
            return self.eval_function(dot, n, n, [n], _NOFINAL)
        if t is _ChainNode:
            return self.eval_chain(dot, n, [n], _NOFINAL)
        if t is _BoolNode or t is _NumberNode or t is _StringNode:
            return n.value
        self.errorf("can't handle %s for arg" % n)


def _ctx_str(node) -> str:
    s = str(node)
    if len(s) > 100:
        s = s[:100] + "..."
    return s


class _HeaderContext:
    """The value a table header is rendered from (docker's FullHeader())."""

    __slots__ = ("headers",)

    def __init__(self, headers):
        self.headers = headers or {}

    def header(self, name):
        h = self.headers.get(name)
        return name.upper() if h is None else h


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


class Template:
    """A parsed template (with its {{define}}d associates)."""

    __slots__ = ("text", "name", "trees", "root", "funcs", "missingkey")

    def __init__(self, text, *, name="", funcs=None, missingkey="default"):
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise ValueError("unrecognized missingkey option %r" % missingkey)
        self.text = text
        self.name = name
        self.missingkey = missingkey
        allf = dict(_BUILTINS)
        allf.update(_user_funcs(funcs))
        self.funcs = allf
        self.trees = {}
        p = _Parser(text, name, allf, self.trees)
        try:
            root = p.parse()
        except _ParseError as e:
            raise TemplateError(str(e), "parse") from None
        except RecursionError:
            raise TemplateError("template: %s:1: max nesting depth exceeded" % name, "parse") from None
        if name in self.trees and not _is_empty_tree(self.trees[name]):
            if not _is_empty_tree(root):
                raise TemplateError(
                    "template: %s:1: template: multiple definition of template %s"
                    % (name, _go_quote(name)),
                    "parse",
                )
        else:
            self.trees[name] = root
        self.root = self.trees[name]

    def execute(self, data, *, funcs=None) -> str:
        """Execute; raises TemplateError(kind="exec") with .partial output."""
        allf = self.funcs
        if funcs:
            allf = dict(allf)
            allf.update(funcs)
        st = _State(self, allf)
        dot = MISSING if data is None else data
        st.vars.append(["$", dot])
        try:
            st.walk(dot, self.root)
        except _ExecError as e:
            raise TemplateError(str(e), "exec", "".join(st.out)) from None
        except RecursionError:
            raise TemplateError(
                "template: %s: exceeded maximum template depth" % self.name, "exec", "".join(st.out)
            ) from None
        return "".join(st.out)


def parse(text: str, *, name: str = "", funcs=None, missingkey: str = "default") -> Template:
    return Template(text, name=name, funcs=funcs, missingkey=missingkey)


def render(text: str, data, *, name: str = "", funcs=None, missingkey: str = "default") -> str:
    return Template(text, name=name, funcs=funcs, missingkey=missingkey).execute(data)


# ---- docker/cli formatter conventions --------------------------------------

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
    hfuncs.update(_HEADER_FUNCS)
    try:
        header = tmpl.execute(_HeaderContext(headers), funcs=hfuncs)
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


# ---- text/tabwriter ------------------------------------------------------


def _text_width(s: str) -> int:
    if s.isascii():
        return len(s)
    import unicodedata

    w = 0
    for c in s:
        if unicodedata.combining(c) or c in "\u200b\u200c\u200d":
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


def tabwrite(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> str:
    """Align ``\\t``-terminated cells like Go's text/tabwriter (flags 0)."""
    lines = [ln.split("\t") for ln in text.split("\n")]
    widths_cache = [[_text_width(c) for c in ln] for ln in lines]
    out: list = []
    nlines = len(lines)

    def pad(textw, cellw):
        if padchar == "\t":
            if tabwidth == 0:
                return ""
            cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
            n = cellw - textw
            return "\t" * ((n + tabwidth - 1) // tabwidth)
        return padchar * (cellw - textw)

    def write_lines(widths, l0, l1):
        for i in range(l0, l1):
            cells = lines[i]
            cw = widths_cache[i]
            parts = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(pad(cw[j], widths[j]))
            out.append("".join(parts))
            if i + 1 < nlines:
                out.append("\n")

    def fmt(widths, line0, line1):
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(widths, line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                if column >= len(lines[this]) - 1:
                    break
                w = widths_cache[this][column] + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(widths, line0, this)
            widths.pop()
            line0 = this
        write_lines(widths, line0, line1)

    fmt([], 0, nlines)
    return "".join(out)

