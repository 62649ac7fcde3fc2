"""Go's encoding/json with SetEscapeHTML(false), for docker's `json` template
function: dict order is kept, other objects marshal like docker's formatter
contexts (HTML-escaped when `json_escapes_html` says their MarshalJSON is
json.Marshal)."""

from __future__ import annotations

from .fmt import fmt_e_short, fmt_f_short, shortest_decimal, special_float
from .values import MISSING


def _json_float(x: float) -> str:
    if special_float(x):
        raise ValueError("json: unsupported value: " + special_float(x))
    digits, dp = shortest_decimal(x)
    sign = "-" if repr(x).startswith("-") else ""
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = fmt_e_short(digits, dp)
        if s[-4:-1] == "e-0":  # Go cleans e-07 up to e-7 (but keeps e+21)
            s = s[:-2] + s[-1]
        return sign + s
    return sign + fmt_f_short(digits, dp)


def json_string(s: str, escape_html: bool = False) -> str:
    """A Go JSON string; `escape_html`: `<`, `>` and `&` as json.Marshal
    writes them (the template function's encoder leaves them)."""
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
        elif o in (0x2028, 0x2029) or escape_html and c in "<>&":
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
        return json_string(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, dict):
        return "{" + ",".join(json_string(str(k)) + ":" + go_json(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        import base64

        return '"' + base64.b64encode(bytes(v)).decode() + '"'
    text = go_json(_json_obj_fields(v))
    if getattr(v, "json_escapes_html", False):
        # a context whose MarshalJSON is json.Marshal's: HTML characters escaped
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text
