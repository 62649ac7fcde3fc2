"""JSON bytes exactly as Go's encoding/json writes them, for output that must
match the docker CLI byte for byte: `indent` is json.Indent (whitespace
between tokens replaced, strings untouched), `compact` is what Marshal does to
a value's own MarshalJSON bytes, `marshal` encodes dicts (in their order),
lists, strings, numbers and `Raw` pre-encoded values, escaping as Go does
(`<`, `>`, `&`, U+2028 and U+2029 as \\uXXXX)."""

from __future__ import annotations

from typing import Any

from .gotemplate.jsonenc import json_string

_LS_PS = ("\u2028".encode(), "\u2029".encode())


class Raw(bytes):
    """Bytes that are already JSON (a Go MarshalJSON result)."""


def _tokens(src: bytes) -> list[bytes]:
    """Split JSON into tokens, dropping the whitespace between them; strings,
    numbers and literals stay byte for byte."""
    out: list[bytes] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in b" \t\r\n":
            i += 1
        elif c in b"{}[],:":
            out.append(src[i:i + 1])
            i += 1
        elif c == 0x22:  # a string, escapes and all
            j = i + 1
            while j < n and src[j] != 0x22:
                j += 2 if src[j] == 0x5C else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < n and src[j] not in b" \t\r\n{}[],:\"":
                j += 1
            out.append(src[i:j])
            i = j
    return out


def compact(src: bytes, escape_html: bool = True) -> bytes:
    """Go's compact (what json.Marshal applies to MarshalJSON output)."""
    out = b"".join(_tokens(src))
    return _escape_html(out) if escape_html else out


def _escape_html(b: bytes) -> bytes:
    if not any(c in b for c in (b"<", b">", b"&")) and not any(x in b for x in _LS_PS):
        return b
    b = b.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return b.replace(_LS_PS[0], b"\\u2028").replace(_LS_PS[1], b"\\u2029")


def indent(src: bytes, prefix: str = "", step: str = "\t") -> bytes:
    """json.Indent: one element per line, `step` per level; `[]` and `{}`
    stay on one line. Trailing whitespace after the value is kept, as Go does."""
    body = src.rstrip(b" \t\r\n")
    trailing = src[len(body):]
    toks = _tokens(body)
    pre, ind = prefix.encode(), step.encode()
    out = bytearray()
    depth = 0
    for k, t in enumerate(toks):
        if t in (b"{", b"["):
            out += t
            nxt = toks[k + 1] if k + 1 < len(toks) else b""
            if nxt in (b"}", b"]"):
                continue
            depth += 1
            out += b"\n" + pre + ind * depth
        elif t in (b"}", b"]"):
            prev = toks[k - 1] if k else b""
            if prev not in (b"{", b"["):
                depth -= 1
                out += b"\n" + pre + ind * depth
            out += t
        elif t == b",":
            out += b",\n" + pre + ind * depth
        elif t == b":":
            out += b": "
        else:
            out += t
    return bytes(out) + trailing


def _string(s: str) -> bytes:
    return json_string(s, escape_html=True).encode()


def marshal(v: Any) -> bytes:
    """json.Marshal of plain values (dict order is the struct's field order)."""
    if isinstance(v, Raw):
        return compact(bytes(v))
    if v is None:
        return b"null"
    if v is True:
        return b"true"
    if v is False:
        return b"false"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dict):
        return b"{" + b",".join(_string(k) + b":" + marshal(x) for k, x in v.items()) + b"}"
    if isinstance(v, (list, tuple)):
        return b"[" + b",".join(marshal(x) for x in v) + b"]"
    raise TypeError(f"cannot marshal {type(v).__name__}")


def marshal_indent(v: Any, step: str) -> bytes:
    return indent(marshal(v), "", step)
