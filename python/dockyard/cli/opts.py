"""Values of flags and arguments that more than one command group takes
(docker's opts package): `--filter name=value` and a REPOSITORY[:TAG] to
create. Errors exit as docker's do, through common.fail."""

from __future__ import annotations

from . import fastjson

from .common import fail

# Typer settings for a command that parses its own flags as docker's (build)
RAW = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def filters_param(values: list[str] | None) -> str | None:
    """`-f name=value` flags as the `filters` query parameter (opts.FilterOpt):
    None when no filter is given, exit 125 on a value without `=`."""
    if not values:
        return None
    f: dict[str, dict[str, bool]] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq:
            fail(f'invalid argument "{v}" for "-f, --filter" flag: bad format of filter '
                 "(expected name=value)", 125)
        f.setdefault(k.strip().lower(), {})[val] = True
    return fastjson.dumps(f)


def tag_reference(target: str) -> tuple[str, str | None]:
    """The repository and tag of a name to create (tag, import, commit):
    exit 1 if it isn't a reference or if it carries a digest."""
    from .. import reference
    from ..errors import InvalidReference

    try:
        ref = reference.parse_normalized(target)
    except InvalidReference as e:
        fail(f'Error parsing reference: "{target}" is not a valid repository/tag: {e}')
    if ref.digest:
        fail("refusing to create a tag with a digest reference")
    return ref.name, ref.tag


def key_values(values: list[str] | None, flag: str) -> dict[str, str]:
    """`--opt k=v`, `--label k[=v]` and the like as a map (opts.ListOpts of
    key=value): exit 125 on a value without `=`, except for labels."""
    out: dict[str, str] = {}
    for v in values or []:
        k, eq, val = v.partition("=")
        if not eq and flag != "--label":
            fail(f'invalid argument "{v}" for "{flag}" flag: bad format (expected key=value)',
                 125)
        out[k] = val
    return out



def time_param(v: str | None) -> str | None:
    """docker's timetypes.GetTimestamp for the common forms (`--since`,
    `--until`): durations ("10m", before now), unix seconds, RFC 3339 times
    (local when they carry no zone). Other text is passed on as given."""
    if v is None:
        return None
    import re
    import time as _t

    if re.fullmatch(r"\d+(\.\d+)?", v):
        return v
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", v):
        from .runopts import go_duration

        return "%.9f" % (_t.time() - go_duration(v) / 1e9)
    from datetime import datetime

    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return v
    if d.tzinfo is None:
        return "%.9f" % _t.mktime(d.timetuple())
    return "%.9f" % d.timestamp()
