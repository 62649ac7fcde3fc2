"""The template lexer (Go's text/template/parse lex.go): the whole text becomes
a token list, ending at EOF or at the first error token."""

from __future__ import annotations

from .strconv import go_quote


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

SPACE = " \t\r\n"


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
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def lex(text: str) -> list:
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
        trim = text.startswith("-", i + 2) and i + 3 < n and text[i + 3] in SPACE
        end = i
        if trim:
            while end > pos and text[end - 1] in SPACE:
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
            rtrim = pos + 1 < n and text[pos] in SPACE and text[pos + 1] == "-" and text.startswith(
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
                while pos < n and text[pos] in SPACE:
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
            rtrim = pos + 1 < n and text[pos] in SPACE and text[pos + 1] == "-" and text.startswith(
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
                    while pos < n and text[pos] in SPACE:
                        line += text[pos] == "\n"
                        pos += 1
                break
            if pos >= n:
                error("unclosed action", start_line)
                return toks
            c = text[pos]
            if c in SPACE:
                j = pos
                while j < n and text[j] in SPACE:
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
                    error("bad number syntax: " + go_quote(text[pos:j]), start_line)
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
    if c in SPACE or c in ".,|:)(":
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
