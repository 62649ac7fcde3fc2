"""Go's strconv for templates: Quote/QuoteToASCII, Unquote of a double-quoted
literal, and number constants the way text/template parses them."""

from __future__ import annotations


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


def go_unquote(s: str) -> str:
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


def go_quote(s: str, ascii_only: bool = False) -> str:
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


def parse_go_number(text: str):
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
