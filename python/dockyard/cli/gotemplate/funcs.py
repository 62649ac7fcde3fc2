"""Template functions: text/template's builtins, docker/cli's basicFunctions,
and the identities docker renders table headers with (HeaderFunctions)."""

from __future__ import annotations

from .errors import FuncError
from .fmt import go_sprint, go_sprintf, sprint, type_name
from .jsonenc import go_json
from .values import MISSING


def is_true(v):
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
        raise FuncError("missing argument for comparison")
    k1 = _basic_kind(a)
    for b in bs:
        k2 = _basic_kind(b)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise FuncError("incompatible types for comparison")
            truth = False
        elif k1 == "invalid":
            truth = True
        elif k1 is None:
            if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
                raise FuncError("non-comparable type %s: %s" % (go_sprint(b), type_name(b)))
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
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    if k1 == "bool":
        raise FuncError("invalid type for comparison")
    return a < b


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _fn_not(a):
    return not is_true(a)


def _fn_len(v):
    if v is None or v is MISSING:
        raise FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict, bytes)):
        return len(v)
    raise FuncError("len of type %s" % type_name(v))


def _index_int(idx, cap: int) -> int:
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise FuncError("cannot index slice/array with type %s" % type_name(idx))
    if idx < 0 or idx >= cap:
        raise FuncError("index out of range: %d" % idx)
    return idx


def _fn_index(item, *indexes):
    for idx in indexes:
        if item is None or item is MISSING:
            raise FuncError("index of untyped nil")
        if isinstance(item, (list, tuple)):
            item = item[_index_int(idx, len(item))]
        elif isinstance(item, str):
            b = item.encode()
            item = b[_index_int(idx, len(b))]
        elif isinstance(item, dict):
            if item and not isinstance(idx, type(next(iter(item)))):
                if idx is None or idx is MISSING:
                    raise FuncError("value is nil; should be of type string")
                raise FuncError("value has type %s; should be string" % type_name(idx))
            item = item.get(idx)
        else:
            raise FuncError("can't index item of type %s" % type_name(item))
    return item


def _fn_slice(item, *indexes):
    if item is None or item is MISSING:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError("too many slice indexes: %d" % len(indexes))
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq = item.encode()
        is_str = True
    elif isinstance(item, (list, tuple)):
        seq = item
        is_str = False
    else:
        raise FuncError("can't slice item of type %s" % type_name(item))
    cap = len(seq)
    idx = [0, len(seq)]
    for k, x in enumerate(indexes):
        idx_v = _index_int(x, cap + 1)
        if k < 2:
            idx[k] = idx_v
    if idx[0] > idx[1]:
        raise FuncError("invalid slice index: %d > %d" % (idx[0], idx[1]))
    res = seq[idx[0] : idx[1]]
    return res.decode(errors="replace") if is_str else list(res)


def _eval_args_str(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(args)


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
    return sprint(args)


def _fn_println(*args):
    return " ".join(go_sprint(a) for a in args) + "\n"


def _fn_printf(fmt, *args):
    if not isinstance(fmt, str):
        raise FuncError("wrong type for value; expected string; got %s" % type_name(fmt))
    return go_sprintf(fmt, list(args))


def fn_call(fn, *args):
    """{{call}}; the evaluator passes its first argument uninvoked."""
    if fn is None or fn is MISSING:
        raise FuncError("call of nil")
    if not callable(fn):
        raise FuncError("non-function of type %s" % type_name(fn))
    return fn(*args)


def _as_str(v, what="string"):
    if isinstance(v, str):
        return v
    if v is None or v is MISSING:
        return ""
    raise FuncError("wrong type for value; expected %s; got %s" % (what, type_name(v)))


def _as_int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise FuncError("wrong type for value; expected int; got %s" % type_name(v))
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
        raise FuncError("wrong type for value; expected []string; got %s" % type_name(elems))
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
BUILTINS = {
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
    "call": (fn_call, 1, None),
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
HEADER_FUNCS = {
    "json": (_hdr_identity1, 1, 1),
    "split": (_hdr_identity1, 2, 2),
    "join": (_hdr_identity1, 2, 2),
    "title": (_hdr_identity1, 1, 1),
    "lower": (_hdr_identity1, 1, 1),
    "upper": (_hdr_identity1, 1, 1),
    "truncate": (_hdr_identity1, 2, 2),
}


def user_funcs(funcs):
    """A caller's functions in the table's form: any number of arguments."""
    if not funcs:
        return {}
    return {k: (f, 0, None) for k, f in funcs.items()}
