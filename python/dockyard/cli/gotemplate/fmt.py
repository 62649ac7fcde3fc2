"""Go's fmt as templates print: `%v` of a value (`go_sprint`, `go_float`),
print's spacing (`sprint`) and printf (`go_sprintf`)."""

from __future__ import annotations

from .strconv import go_quote
from .values import MISSING


def type_name(v) -> str:
    """Go's %T of a value as it would arrive decoded from JSON."""
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


def shortest_decimal(x: float):
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


def fmt_e_short(digits: str, dp: int, e: str = "e") -> str:
    """%e of shortest digits (exponent at least two digits, like Go)."""
    s = digits[0]
    if len(digits) > 1:
        s += "." + digits[1:]
    exp = dp - 1 if digits != "0" else 0
    return "%s%s%s%02d" % (s, e, "-" if exp < 0 else "+", abs(exp))


def fmt_f_short(digits: str, dp: int) -> str:
    """%f of shortest digits."""
    if digits == "0":
        return "0"
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def special_float(x: float):
    """Go's spelling of NaN and the infinities, else None."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    return None


def go_float(x: float, verb: str = "g") -> str:
    """Go's %v/%g (shortest) rendering of a float64."""
    sp = special_float(x)
    if sp:
        return sp
    digits, dp = shortest_decimal(x)
    sign = "-" if (x < 0 or (x == 0 and str(x).startswith("-"))) else ""
    exp = dp - 1
    # strconv 'g' with shortest precision switches to %e when the exponent
    # is < -4 or >= 6 (eprec is forced to 6 for the shortest form)
    if digits != "0" and (exp < -4 or exp >= 6):
        return sign + fmt_e_short(digits, dp, "E" if verb == "G" else "e")
    return sign + fmt_f_short(digits, dp)


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
            go_sprint(k, False) + ":" + go_sprint(v[k], False) for k in sorted_keys(v)
        ) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint(e, False) for e in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in v) + "]"
    return str(v)


def sorted_keys(d: dict):
    """Map keys in Go's printing/range order."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


# ---- printf: flags, width, precision and verbs


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
    return "%!" + verb + "(" + type_name(v) + "=" + go_sprint(v) + ")"


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
        return _pad("'" + go_quote(chr(v))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", spec)
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
    sp = special_float(v)
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
        return _pad(go_quote(v, ascii_only=spec.plus), spec)
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
        return _pad(type_name(v), spec)
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
            for k in sorted_keys(v)
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
                extra.append(type_name(v) + "=" + go_sprint(v))
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


def sprint(args) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    prev_str = True
    for k, a in enumerate(args):
        is_str = isinstance(a, str)
        if k > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(go_sprint(a))
        prev_str = is_str
    return "".join(out)
