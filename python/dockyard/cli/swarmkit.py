"""What the swarm-mode command groups (swarm, node, secret, config) share, as
docker/cli writes it: Go's time and PrettyPrint texts, name ordering, flag
errors with their usage line, `inspect` of cluster objects (raw JSON, a
template or a `--pretty` one) and the task table of `node ps`."""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

from .client import APIError, ConnectError
from .common import client


def usage_fail(cmd: str, usage: str, msg: str) -> NoReturn:
    """A bad flag value, as cobra reports it: exit 125 with the usage line."""
    print(f"{msg}\n\nUsage:  dockyard {cmd} {usage}\n\n"
          f"Run 'dockyard {cmd} --help' for more information", file=sys.stderr)
    raise SystemExit(125)


def error_text(e: Exception) -> str:
    """The line docker's CLI prints for a failed request."""
    if isinstance(e, APIError):
        return f"Error response from daemon: {e.message}"
    return str(e)


def pretty(s: str) -> str:
    """formatter.PrettyPrint: first letter upper-cased, the rest lower-cased."""
    if len(s) <= 1:
        return s.lower()
    return s[0].upper() + s[1:].lower()


def parse_time(s: str) -> tuple[float, int, str]:
    """An RFC 3339 time from the API: (unix seconds, nanoseconds part, Go's
    zone text "+0000 UTC" as time.Time prints it)."""
    import calendar
    import re

    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        return 0.0, 0, "+0000 UTC"
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    ns = int((m.group(7) or "0")[:9].ljust(9, "0"))
    unix = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    zone = m.group(8)
    if zone == "Z":
        return unix + ns / 1e9, ns, "+0000 UTC"
    off = (int(zone[1:3]) * 60 + int(zone[4:6])) * (1 if zone[0] == "+" else -1)
    z = zone.replace(":", "")
    return unix - off * 60 + ns / 1e9, ns, f"{z} {z}"


def go_time_string(s: str) -> str:
    """time.Time.String() of an API time: "2006-01-02 15:04:05.999999999 -0700 MST"."""
    frac = ""
    _, ns, zone = parse_time(s)
    if ns:
        frac = ("." + f"{ns:09d}").rstrip("0")
    return f"{s[:10]} {s[11:19]}{frac} {zone}"


def ago(s: str) -> str:
    """units.HumanDuration(now - t) + " ago"."""
    import time

    from ..units import human_duration

    return human_duration(time.time() - parse_time(s)[0]) + " ago"


def natural_key(s: str) -> list[tuple[int, Any]]:
    """sortorder.NaturalLess as a sort key: runs of digits compare as numbers."""
    import re

    return [(1, int(p)) if p.isdigit() else (0, p) for p in re.findall(r"\d+|\D+", s)]


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items())


def check_labels(values: list[str] | None, cmd: str, usage: str, flag: str) -> dict[str, str]:
    """`--label k[=v]` (opts.ValidateLabel, ConvertKVStringsToMap)."""
    out: dict[str, str] = {}
    for v in values or []:
        k, _, val = v.partition("=")
        if not k.strip():
            usage_fail(cmd, usage, f'invalid argument "{v}" for "{flag}" flag: '
                                   f"invalid label '{v}': empty name")
        out[k] = val
    return out


def filters_arg(values: list[str] | None, cmd: str, usage: str = "[OPTIONS]") -> str | None:
    """`-f name=value` flags as the `filters` parameter, exit 125 with the
    usage line on a value without `=`."""
    from .opts import filters_param

    for v in values or []:
        if "=" not in v:
            usage_fail(cmd, usage, f'invalid argument "{v}" for "-f, --filter" flag: bad '
                                   "format of filter (expected name=value)")
    return filters_param(values)


def inspect(names: list[str], format: str | None, pretty_template: str | None,
            get: Callable[[str], Any], wrap: Callable[[Any], Any] | None = None) -> None:
    """docker's `inspect` of cluster objects: indented JSON, each through a
    template, or the group's `--pretty` template (then nothing is printed
    if any object is missing). Exits 1 after printing if a request failed."""
    from .gotemplate import TemplateError, format_rows, parse
    from .output import print_json_indent, print_one

    fmt = format or ""
    if fmt.startswith("pretty") and fmt != "pretty":
        print("cannot supply extra formatting options to the pretty template", file=sys.stderr)
        raise SystemExit(1)
    if fmt == "pretty" and pretty_template is not None and wrap is not None:
        objs = []
        for n in names:
            try:
                objs.append(wrap(get(n)))
            except (APIError, ConnectError) as e:
                print(error_text(e), file=sys.stderr)
                raise SystemExit(1) from None
        try:
            sys.stdout.write(format_rows(pretty_template, objs))
        except TemplateError as e:
            print(getattr(e, "docker_message", str(e)), file=sys.stderr)
            raise SystemExit(1) from None
        return
    if fmt and fmt != "json":
        try:
            parse(fmt)
        except TemplateError as e:
            # docker's 64 for a parse error becomes 1 in these commands
            print(f"template parsing error: {e}", file=sys.stderr)
            raise SystemExit(1) from None
    found, errors = [], []
    for n in names:
        try:
            found.append(get(n))
        except (APIError, ConnectError) as e:
            errors.append(error_text(e))
    if not fmt:
        print_json_indent(found)
    elif fmt == "json":  # compact, one line
        import json

        text = json.dumps(found, separators=(",", ":"), ensure_ascii=False)
        sys.stdout.write(text.replace("<", "\\u003c").replace(">", "\\u003e")
                         .replace("&", "\\u0026") + "\n")
    elif found:
        for obj in found:
            print_one(fmt, obj)
    else:
        sys.stdout.write("\n")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        raise SystemExit(1)


def node_reference(ref: str) -> str:
    """node.Reference: "self" is this engine's node ID, from /info."""
    if ref != "self":
        return ref
    c = client()
    node_id = ((c.get_json("/info").get("Swarm") or {}).get("NodeID") or "")
    if node_id:
        return node_id
    c.get_json("/nodes")
    raise ConnectError("node ID not found in /info")


# --- tasks (docker's cli/command/task) -------------------------------------------

TASK_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t"
              "{{.CurrentState}}\t{{.Error}}\t{{.Ports}}")
TASK_RAW = ("id: {{.ID}}\\nname: {{.Name}}\\nimage: {{.Image}}\\nnode: {{.Node}}\\n"
            "desired_state: {{.DesiredState}}\\ncurrent_state: {{.CurrentState}}\\n"
            "error: {{.Error}}\\nports: {{.Ports}}\\n")
TASK_HEADERS = {"ID": "ID", "Name": "NAME", "Image": "IMAGE", "Node": "NODE",
                "DesiredState": "DESIRED STATE", "CurrentState": "CURRENT STATE",
                "Error": "ERROR", "Ports": "PORTS"}


class Resolver:
    """idresolver: node and service IDs to names, each asked once."""

    def __init__(self, no_resolve: bool) -> None:
        self.no_resolve = no_resolve
        self.cache: dict[tuple[str, str], str] = {}

    def resolve(self, kind: str, ident: str) -> str:
        if self.no_resolve:
            return ident
        if (kind, ident) not in self.cache:
            from .client import path_quote

            name = ident
            try:
                obj = client().get_json(f"/{kind}s/{path_quote(ident)}")
                spec = obj.get("Spec") or {}
                if kind == "service":
                    name = spec.get("Name", "")
                else:
                    name = spec.get("Name") or (obj.get("Description") or {}).get(
                        "Hostname") or ident
            except APIError:
                pass
            self.cache[(kind, ident)] = name
        return self.cache[(kind, ident)]


class TaskRow:
    """One line of the task table (task.taskContext)."""

    def __init__(self, task: dict[str, Any], name: str, node: str, trunc: bool) -> None:
        self._t, self._name, self._node, self._trunc = task, name, node, trunc

    def ID(self) -> str:
        i = self._t.get("ID", "")
        return i[:12] if self._trunc else i

    def Name(self) -> str:
        return self._name

    def Image(self) -> str:
        image = ((self._t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
        if self._trunc:
            from .. import reference

            try:
                ref = reference.parse_normalized(image)
            except Exception:
                return image
            if ref.tag:
                return reference.familiar_string(f"{ref.name}:{ref.tag}")
        return image

    def Node(self) -> str:
        return self._node

    def DesiredState(self) -> str:
        return pretty(self._t.get("DesiredState", ""))

    def CurrentState(self) -> str:
        st = self._t.get("Status") or {}
        return f"{pretty(st.get('State', ''))} {ago(st.get('Timestamp', '')).lower()}"

    def Error(self) -> str:
        err = (self._t.get("Status") or {}).get("Err", "")
        if self._trunc and len(err) > 30:
            err = err[:29] + "…"
        return f'"{err}"' if err else ""

    def Ports(self) -> str:
        ports = ((self._t.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
        return ",".join(f"*:{p.get('PublishedPort', 0)}->{p.get('TargetPort', 0)}/"
                        f"{p.get('Protocol', '')}" for p in ports)


def print_tasks(tasks: list[dict[str, Any]], resolver: Resolver, trunc: bool, quiet: bool,
                format: str | None) -> None:
    """task.Print: names "service.slot" (or service.node), sorted, repeats of a
    name indented under the first in tables."""
    from .output import print_rows

    fmt = format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else TASK_TABLE
    elif fmt == "raw":
        fmt = "id: {{.ID}}" if quiet else TASK_RAW
    named = []
    for t in tasks:
        svc = resolver.resolve("service", t.get("ServiceID", ""))
        slot = t.get("Slot") or 0
        named.append((f"{svc}.{slot}" if slot else f"{svc}.{t.get('NodeID', '')}", t))
    # by name, the newest first among equal names (a stable sort, as docker's)
    named.sort(key=lambda nt: -parse_time(nt[1].get("CreatedAt", ""))[0])
    named.sort(key=lambda nt: natural_key(nt[0]))
    indent = " \\_ " if fmt.startswith("table") else ""
    rows, prev = [], None
    for name, t in named:
        shown = indent + name if name == prev else name
        prev = name
        rows.append(TaskRow(t, shown, resolver.resolve("node", t.get("NodeID", "")), trunc))
    print_rows(fmt, rows, TASK_HEADERS)


# --- secrets and configs ------------------------------------------------------------

def read_data(file: str, max_size: int) -> bytes:
    """readSecretData/readConfigData: a file, or `-` for stdin; never empty.
    Raises ValueError with docker's text."""
    if file == "-":
        data = sys.stdin.buffer.read(2 * max_size)
        if not data:
            raise ValueError("error reading from STDIN: data is empty")
        return data
    try:
        with open(file, "rb") as f:
            data = f.read(2 * max_size)
    except OSError as e:
        raise ValueError(f"error reading from {file}: open {file}: "
                         f"{(e.strerror or str(e)).lower()}") from None
    if not data:
        raise ValueError(f"error reading from {file}: data is empty")
    return data


class ObjectRow:
    """One line of `secret ls`/`config ls` (secretContext, configContext)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self._o = obj
        self._spec = obj.get("Spec") or {}

    def ID(self) -> str:
        return self._o.get("ID", "")

    def Name(self) -> str:
        return self._spec.get("Name", "")

    def CreatedAt(self) -> str:
        return ago(self._o.get("CreatedAt", ""))

    def UpdatedAt(self) -> str:
        return ago(self._o.get("UpdatedAt", ""))

    def Labels(self) -> str:
        return labels_text(self._spec.get("Labels"))

    def Label(self, name: str) -> str:
        return (self._spec.get("Labels") or {}).get(name, "")


class SecretRow(ObjectRow):
    def Driver(self) -> str:
        return (self._spec.get("Driver") or {}).get("Name", "")


class ObjectPretty(dict):
    """A secret or config as its `--pretty` template sees it."""

    def __init__(self, obj: dict[str, Any]) -> None:
        super().__init__(obj)
        spec = obj.get("Spec") or {}
        data = spec.get("Data")
        if data:
            import base64

            data = base64.b64decode(data).decode("utf-8", "replace")
        self.update({"Name": spec.get("Name", ""), "Labels": spec.get("Labels") or {},
                     "Driver": (spec.get("Driver") or {}).get("Name", ""),
                     "CreatedAt": pretty(go_time_string(obj.get("CreatedAt", ""))),
                     "UpdatedAt": pretty(go_time_string(obj.get("UpdatedAt", ""))),
                     "Data": data or ""})


def list_objects(kind: str, quiet: bool, filters: list[str] | None, format: str | None,
                 table: str, row: Callable[[dict[str, Any]], Any]) -> None:
    """`secret ls`, `config ls`: sorted by name, the group's table by default."""
    from .common import call
    from .output import print_rows

    query = {"filters": filters_arg(filters, f"{kind} ls")}
    objs = call(lambda: client().get_json(f"/{kind}s", query))
    objs = sorted(objs or [], key=lambda o: natural_key((o.get("Spec") or {}).get("Name", "")))
    fmt = format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else table
    print_rows(fmt, [row(o) for o in objs],
               {"ID": "ID", "Name": "NAME", "Driver": "DRIVER", "CreatedAt": "CREATED",
                "UpdatedAt": "UPDATED", "Labels": "LABELS"})


def remove_objects(kind: str, names: list[str]) -> None:
    """`secret rm`, `config rm`: each name printed once removed; the errors
    after, exit 1."""
    from .client import path_quote
    from .common import fail

    errors = []
    for n in names:
        try:
            client().request("DELETE", f"/{kind}s/{path_quote(n)}").close()
            print(n)
        except (APIError, ConnectError) as e:
            errors.append(error_text(e))
    if errors:
        fail("\n".join(errors))


def get_object(kind: str) -> Callable[[str], Any]:
    from .client import path_quote

    return lambda n: client().get_json(f"/{kind}s/{path_quote(n)}")


def check_args(cmd: str, usage: str, args: list[str] | None, lo: int,
               hi: int | None = None) -> list[str]:
    """cobra's argument counts (cli.NoArgs, ExactArgs, RequiresMinArgs,
    RequiresRangeArgs) with docker's messages; exit 1. `hi` None: no upper bound."""
    args = list(args or [])
    n = len(args)
    if lo <= n and (hi is None or n <= hi):
        return args
    word = "argument" if (hi if hi is not None else lo) == 1 else "arguments"
    see = "Run"
    if hi == 0:
        what = "accepts no arguments"
    elif hi is None:
        what, see = f"requires at least {lo} {word}", "See"
    elif lo == hi:
        what = f"requires {lo} {word}"
    else:
        what = f"requires at least {lo} and at most {hi} {word}"
    line = f"dockyard {cmd} {usage}".rstrip()
    print(f"dockyard: 'dockyard {cmd}' {what}\n\nUsage:  {line}\n\n"
          f"{see} 'dockyard {cmd} --help' for more information", file=sys.stderr)
    raise SystemExit(1)
