"""Container commands: run, create, start, stop, kill, restart, rm, wait, ps,
logs, attach, exec, top, pause, unpause, rename, diff, commit, cp, export,
stats, prune, inspect, and the `container` group that holds them.

`run` and `create` share their flag table, parser and request builder with
the fast path (runflags.py, runflow.py); their Typer options are generated
from runflags.FLAGS.
"""

from __future__ import annotations

import inspect as _inspect
import json
import os
import sys
from typing import Any, Callable, List, Optional

import typer

from .common import call, client, fail

app = typer.Typer(help="Manage containers", no_args_is_help=True, add_completion=False)

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "Status": "STATUS", "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS",
              "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
              "State": "STATE"}
STATS_HEADERS = {"Container": "CONTAINER ID", "ID": "CONTAINER ID", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def _q(name: str) -> str:
    from .client import path_quote

    return path_quote(name)


# --- run / create (options generated from runflags.FLAGS) ----------------------

def _flag_command(cmd: str) -> Callable[..., None]:
    from . import runflags, runflow

    P = _inspect.Parameter
    params = [
        P("image", P.KEYWORD_ONLY, default=typer.Argument(..., metavar="IMAGE"),
          annotation=str),
        P("command", P.KEYWORD_ONLY, default=typer.Argument(None, metavar="[COMMAND] [ARG...]"),
          annotation=Optional[List[str]]),
    ]
    kinds = {}
    for spellings, key, kind, help in runflags.FLAGS:
        if cmd != "run" and key in runflags.RUN_ONLY:
            continue
        if key == "sig_proxy":
            kind = "s"
        kinds[key] = kind
        if kind == "b":
            params.append(P(key, P.KEYWORD_ONLY, annotation=bool,
                            default=typer.Option(False, *spellings, help=help)))
        elif kind == "s":
            params.append(P(key, P.KEYWORD_ONLY, annotation=Optional[str],
                            default=typer.Option(None, *spellings, help=help, metavar="string")))
        else:
            params.append(P(key, P.KEYWORD_ONLY, annotation=Optional[List[str]],
                            default=typer.Option(None, *spellings, help=help, metavar="list")))

    def command(**kw: Any) -> None:
        image, args = kw.pop("image"), list(kw.pop("command") or [])
        opts = runflags.defaults(cmd)
        changed = set()
        for k, v in kw.items():
            if kinds[k] == "l":
                v = list(v or [])
            if k == "sig_proxy":
                if v is None:
                    continue
                v = v.lower() in ("1", "t", "true")
            if v not in (None, False, []):
                changed.add(k)
                opts[k] = v
        fn = runflow.run_parsed if cmd == "run" else runflow.create_parsed
        raise SystemExit(fn(opts, changed, image, args))

    command.__signature__ = _inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = ("Run a command in a new container" if cmd == "run" else
                       "Create a new container")
    command.__name__ = cmd
    return command


FLAG_CTX = {"allow_interspersed_args": False}
run = _flag_command("run")
create = _flag_command("create")


# --- ps -----------------------------------------------------------------------

def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def ellipsis(s: str, width: int) -> str:
    if len(s) <= width:
        return s
    return s[:width - 1] + "…"


def display_ports(ports: list[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts, ranges of consecutive ports folded."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    out: list[str] = []
    for p in sorted(ports, key=lambda p: (p.get("Type", ""), p.get("PrivatePort", 0))):
        if p.get("IP") and p.get("PublicPort"):
            key = f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            if ":" in p["IP"]:
                key = f"[{p['IP']}]:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            out.append(key)
            continue
        key = p.get("Type", "tcp")
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(p["PrivatePort"])
    for typ in order:
        nums = sorted(set(groups[typ]))
        start = prev = nums[0]
        for n in nums[1:] + [None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            out.append(f"{start}/{typ}" if start == prev else f"{start}-{prev}/{typ}")
            if n is not None:
                start = prev = n
    return ", ".join(sorted(out))


def _created_at(unix: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(unix))


def ps_rows(items: list[dict[str, Any]], trunc: bool) -> list[dict[str, Any]]:
    from ..units import human_size, since

    rows = []
    for c in items:
        names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
        if trunc:
            for n in names:
                if "/" not in n:
                    names = [n]
                    break
        image = c.get("Image") or "<no image>"
        if trunc and image.startswith("sha256:"):
            image = image[7:19]
        cmd = c.get("Command", "")
        srw = human_size(c.get("SizeRw") or 0, 3)
        size = srw
        if c.get("SizeRootFs"):
            size = f"{srw} (virtual {human_size(c['SizeRootFs'], 3)})"
        labels = c.get("Labels") or {}
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
        rows.append({
            "ID": c["Id"][:12] if trunc else c["Id"], "Image": image,
            "Command": _go_quote(ellipsis(cmd, 20) if trunc else cmd),
            "CreatedAt": _created_at(c.get("Created", 0)),
            "RunningFor": since(c.get("Created", 0)), "Ports": display_ports(c.get("Ports") or []),
            "Status": c.get("Status", ""), "State": c.get("State", ""), "Size": size,
            "Names": ",".join(names),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
            "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
            "Networks": ",".join(sorted(nets)),
        })
    return rows


def ps(all: bool = typer.Option(False, "-a", "--all", help="Show all containers"),
       filter: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                  help="Filter output based on conditions"),
       format: Optional[str] = typer.Option(None, "--format"),
       last: int = typer.Option(-1, "-n", "--last", help="Show n last created containers"),
       latest: bool = typer.Option(False, "-l", "--latest",
                                   help="Show the latest created container"),
       no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
       quiet: bool = typer.Option(False, "-q", "--quiet", help="Only display container IDs"),
       size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes")) -> None:
    """List containers"""
    from .opts import filters_param
    from .output import print_rows

    limit = 1 if latest else last
    params = {"all": True if all or limit > 0 else None, "limit": limit if limit > 0 else None,
              "size": size or None, "filters": filters_param(filter)}
    if format and not size and ".Size" in format:
        params["size"] = True
    items = call(lambda: client().get_json("/containers/json", params))
    if not format or format == "table":
        if quiet:
            format = "{{.ID}}"
        else:
            format = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
                      "\t{{.Ports}}\t{{.Names}}" + ("\t{{.Size}}" if size else ""))
    elif format == "raw":
        format = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\n"
                  "created_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\n"
                  "status: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\n"
                  "ports: {{- pad .Ports 1 0}}\n")
    print_rows(format, ps_rows(items, not no_trunc), PS_HEADERS)


# --- simple per-container actions ----------------------------------------------

def _each(names: list[str], fn: Callable[[str], None], tail: Callable[[list[str]], str] | None
          = None, not_found: str | None = None) -> None:
    """Run fn for each container, print its name; errors go to stderr, exit 1."""
    from .client import APIError, ConnectError

    failed: list[str] = []
    for n in names:
        try:
            fn(n)
        except APIError as e:
            if not_found and e.status == 404 and "no such container" in e.message.lower():
                print(f"Error: No such container: {n}", file=sys.stderr)
            else:
                print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed.append(n)
            continue
        except ConnectError as e:
            fail(str(e))
        print(n)
        sys.stdout.flush()
    if failed:
        if tail:
            print(tail(failed), file=sys.stderr)
        raise SystemExit(1)


def _post(path: str, params: dict[str, Any] | None = None) -> None:
    client().request("POST", path, params).close()


def stop(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
         time: int = typer.Option(10, "-t", "--time", help="Seconds to wait for stop before "
                                  "killing it")) -> None:
    """Stop one or more running containers"""
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/stop", {"t": time}))


def restart(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
            time: int = typer.Option(10, "-t", "--time")) -> None:
    """Restart one or more containers"""
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/restart", {"t": time}))


def kill(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
         signal: str = typer.Option("KILL", "-s", "--signal", help="Signal to send")) -> None:
    """Kill one or more running containers"""
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/kill", {"signal": signal}))


def pause(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")) -> None:
    """Pause all processes within one or more containers"""
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/pause"))


def unpause(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")
            ) -> None:
    """Unpause all processes within one or more containers"""
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/unpause"))


def rm(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
       force: bool = typer.Option(False, "-f", "--force",
                                  help="Force the removal of a running container"),
       link: bool = typer.Option(False, "-l", "--link", help="Remove the specified link"),
       volumes: bool = typer.Option(False, "-v", "--volumes",
                                    help="Remove anonymous volumes")) -> None:
    """Remove one or more containers"""
    def one(n: str) -> None:
        client().request("DELETE", f"/containers/{_q(n.strip('/'))}",
                         {"v": volumes or None, "force": force or None,
                          "link": link or None}).close()
    _each(containers, one, not_found="rm")


def rename(container: str = typer.Argument(...), new_name: str = typer.Argument(...)) -> None:
    """Rename a container"""
    from .client import APIError

    if not new_name.strip():
        fail("Error: Neither old nor new names may be empty")
    try:
        call(lambda: _post(f"/containers/{_q(container)}/rename", {"name": new_name.strip()}))
    except SystemExit:
        print(f"Error: failed to rename container named {container}", file=sys.stderr)
        raise
    APIError  # noqa: B018


def wait(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")) -> None:
    """Block until one or more containers stop, then print their exit codes"""
    from .client import APIError

    failed = False
    for n in containers:
        try:
            r = client().request("POST", f"/containers/{_q(n)}/wait")
            res = r.json()
            r.close()
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        if (res.get("Error") or {}).get("Message"):
            print(res["Error"]["Message"], file=sys.stderr)
            failed = True
            continue
        print(res.get("StatusCode", 0))
    if failed:
        raise SystemExit(1)


def _inspect_container(name: str) -> dict[str, Any]:
    """The Go client's ContainerInspect: a 404 reads `Error: No such container: x`."""
    return _not_found_as("container", name,
                         lambda: client().get_json(f"/containers/{_q(name)}/json"))


def _not_found_as(kind: str, ident: str, fn: Callable[[], Any]) -> Any:
    from .client import APIError, ConnectError

    try:
        return fn()
    except ConnectError as e:
        fail(str(e))
    except APIError as e:
        if e.status == 404:
            fail(f"Error: No such {kind}: {ident}")
        fail(f"Error response from daemon: {e.message}")


def start(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
          attach: bool = typer.Option(False, "-a", "--attach",
                                      help="Attach STDOUT/STDERR and forward signals"),
          interactive: bool = typer.Option(False, "-i", "--interactive",
                                           help="Attach container's STDIN"),
          detach_keys: Optional[str] = typer.Option(None, "--detach-keys")) -> None:
    """Start one or more stopped containers"""
    if attach or interactive:
        if len(containers) > 1:
            fail("you cannot start and attach multiple containers at once")
        raise SystemExit(_attach_flow(containers[0], True, interactive, detach_keys, True))
    _each(containers, lambda n: _post(f"/containers/{_q(n)}/start"),
          tail=lambda f: f"Error: failed to start containers: {', '.join(f)}")


def _attach_flow(name: str, start: bool, stdin: bool, detach_keys: str | None,
                 sig_proxy: bool) -> int:
    """attach (and start): stream until the output ends, exit with the
    container's status."""
    from . import streams
    from .client import APIError

    c = client()
    info = _inspect_container(name)
    cfg = info["Config"]
    tty = cfg.get("Tty", False)
    st = info["State"]
    if not start:
        if not st.get("Running"):
            fail("You cannot attach to a stopped container, start it first")
        if st.get("Paused"):
            fail("You cannot attach to a paused container, unpause it first")
        if st.get("Restarting"):
            fail("You cannot attach to a restarting container, wait until it is running")
    stdin = stdin and cfg.get("OpenStdin", False)
    cid = info["Id"]
    if sig_proxy and not tty:
        streams.forward_signals(lambda sig: _post(f"/containers/{cid}/kill", {"signal": sig}))
    h = call(lambda: c.hijack("POST", f"/containers/{cid}/attach",
                              {"stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1,
                               "detachKeys": detach_keys}))
    cond = None
    if start:
        cond = "removed" if (info.get("HostConfig") or {}).get("AutoRemove") else "next-exit"
    waiter = call(lambda: c.request("POST", f"/containers/{cid}/wait", {"condition": cond}))
    if start:
        try:
            c.request("POST", f"/containers/{cid}/start").close()
        except APIError as e:
            h.close()
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            print(f"Error: failed to start containers: {name}", file=sys.stderr)
            return 1
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: _post(f"/containers/{cid}/resize",
                                                      {"h": hh, "w": ww}))
    try:
        streams.stream(h, tty, stdin, detach_keys)
    except streams.DetachError:
        if not start:
            print("read escape sequence", file=sys.stderr)
        return 0
    finally:
        h.close()
    res = json.loads(waiter.read() or b"{}")
    waiter.close()
    return int(res.get("StatusCode", 0))


def attach(container: str = typer.Argument(...),
           detach_keys: Optional[str] = typer.Option(None, "--detach-keys"),
           no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not attach STDIN"),
           sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy")) -> None:
    """Attach local standard input, output, and error streams to a running container"""
    raise SystemExit(_attach_flow(container, False, not no_stdin, detach_keys, sig_proxy))


# --- logs ---------------------------------------------------------------------

def _time_param(v: str | None) -> str | None:
    """docker's timetypes.GetTimestamp for the common forms: durations
    ("10m"), unix seconds, RFC 3339 times."""
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


def logs(container: str = typer.Argument(...),
         details: bool = typer.Option(False, "--details", help="Show extra details provided "
                                      "to logs"),
         follow: bool = typer.Option(False, "-f", "--follow", help="Follow log output"),
         since: Optional[str] = typer.Option(None, "--since"),
         tail: str = typer.Option("all", "-n", "--tail"),
         timestamps: bool = typer.Option(False, "-t", "--timestamps"),
         until: Optional[str] = typer.Option(None, "--until")) -> None:
    """Fetch the logs of a container"""
    from .streams import copy_output

    info = _inspect_container(container)
    params = {"stdout": 1, "stderr": 1, "since": _time_param(since),
              "until": _time_param(until), "timestamps": timestamps or None,
              "follow": follow or None, "tail": tail, "details": details or None}

    def run() -> None:
        r = client().request("GET", f"/containers/{_q(container)}/logs", params)
        try:
            copy_output(r.read_chunk, info["Config"].get("Tty", False))
        finally:
            r.close()
    call(run)


# --- exec ---------------------------------------------------------------------

def exec_(container: str = typer.Argument(...),
          command: List[str] = typer.Argument(..., metavar="COMMAND [ARG...]"),
          detach: bool = typer.Option(False, "-d", "--detach", help="Detached mode"),
          detach_keys: Optional[str] = typer.Option(None, "--detach-keys"),
          env: Optional[List[str]] = typer.Option(None, "-e", "--env"),
          env_file: Optional[List[str]] = typer.Option(None, "--env-file"),
          interactive: bool = typer.Option(False, "-i", "--interactive"),
          privileged: bool = typer.Option(False, "--privileged"),
          tty: bool = typer.Option(False, "-t", "--tty"),
          user: Optional[str] = typer.Option(None, "-u", "--user"),
          workdir: Optional[str] = typer.Option(None, "-w", "--workdir")) -> None:
    """Run a command in a running container"""
    from . import streams
    from .client import APIError
    from .runflags import UsageError
    from .runopts import env_list

    try:
        envs = env_list(env_file or [], env or [])
    except UsageError as e:
        fail(str(e))
    c = client()
    info = _inspect_container(container)
    if not info["State"].get("Running"):
        fail(f"Error response from daemon: Container {info['Id']} is not running")
    body = {"User": user or "", "Privileged": privileged, "Tty": tty,
            "AttachStdin": interactive and not detach, "AttachStderr": not detach,
            "AttachStdout": not detach, "Detach": detach, "DetachKeys": detach_keys or "",
            "Env": envs or None, "WorkingDir": workdir or "", "Cmd": command}
    r = call(lambda: c.post_json(f"/containers/{_q(container)}/exec", body=body))
    eid = r["Id"]
    if detach:
        call(lambda: c.post_json(f"/exec/{eid}/start", body={"Detach": True, "Tty": tty}))
        return
    data = json.dumps({"Detach": False, "Tty": tty}).encode()
    h = call(lambda: c.hijack("POST", f"/exec/{eid}/start", body=data))
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: _post(f"/exec/{eid}/resize", {"h": hh, "w": ww}))
    try:
        streams.stream(h, tty, interactive, detach_keys)
    except streams.DetachError:
        raise SystemExit(0)
    finally:
        h.close()
    try:
        res = c.get_json(f"/exec/{eid}/json")
    except APIError as e:
        fail(f"Error response from daemon: {e.message}")
    code = res.get("ExitCode") or 0
    if code:
        raise SystemExit(code)


# --- top, diff, inspect, port ---------------------------------------------------

def top(container: str = typer.Argument(...),
        ps_args: Optional[List[str]] = typer.Argument(None, metavar="[ps OPTIONS]")) -> None:
    """Display the running processes of a container"""
    from .gotemplate import tabwrite

    params = {"ps_args": " ".join(ps_args)} if ps_args else None
    res = call(lambda: client().get_json(f"/containers/{_q(container)}/top", params))
    lines = ["\t".join(res.get("Titles") or []) + "\n"]
    for p in res.get("Processes") or []:
        lines.append("\t".join(p) + "\n")
    sys.stdout.write(tabwrite("".join(lines), 20, 1, 3))


def diff(container: str = typer.Argument(...)) -> None:
    """Inspect changes to files or directories on a container's filesystem"""
    changes = call(lambda: client().get_json(f"/containers/{_q(container)}/changes"))
    for ch in changes or []:
        print(f"{'CAD'[ch['Kind']] if ch['Kind'] in (0, 1, 2) else '?'} {ch['Path']}")


def inspect_container(containers: List[str] = typer.Argument(..., metavar="CONTAINER "
                                                             "[CONTAINER...]"),
                      format: Optional[str] = typer.Option(None, "-f", "--format"),
                      size: bool = typer.Option(False, "-s", "--size")) -> None:
    """Display detailed information on one or more containers"""
    from .inspector import inspect_objects

    inspect_objects(containers, format, "container", size)


def port(container: str = typer.Argument(...),
         private_port: Optional[str] = typer.Argument(None, metavar="[PRIVATE_PORT[/PROTO]]")
         ) -> None:
    """List port mappings or a specific mapping for the container"""
    info = _inspect_container(container)
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        p, _, proto = private_port.partition("/")
        key = f"{p}/{proto or 'tcp'}"
        if not ports.get(key):
            fail(f"Error: No public port '{key}' published for {container}")
        for b in ports[key]:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return
    for key in sorted(ports):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")


# --- commit, export, cp -------------------------------------------------------

def commit(container: str = typer.Argument(...),
           repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
           author: Optional[str] = typer.Option(None, "-a", "--author"),
           change: Optional[List[str]] = typer.Option(None, "-c", "--change"),
           message: Optional[str] = typer.Option(None, "-m", "--message"),
           pause: bool = typer.Option(True, "-p", "--pause/--no-pause")) -> None:
    """Create a new image from a container's changes"""
    repo = tag = None
    if repository:
        from .opts import tag_reference

        repo, tag = tag_reference(repository)
    params = {"container": container, "repo": repo, "tag": tag, "comment": message,
              "author": author, "pause": pause, "changes": change or None}
    res = call(lambda: client().post_json("/commit", params))
    print(res["Id"])


def _stream_to(resp: Any, output: str | None) -> None:
    out = open(output, "wb") if output else sys.stdout.buffer
    try:
        while True:
            chunk = resp.read_chunk(1 << 20)
            if not chunk:
                break
            out.write(chunk)
    finally:
        resp.close()
        if output:
            out.close()
        else:
            out.flush()


def export(container: str = typer.Argument(...),
           output: Optional[str] = typer.Option(None, "-o", "--output")) -> None:
    """Export a container's filesystem as a tar archive"""
    if output is None and sys.stdout.isatty():
        fail("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    call(lambda: _stream_to(client().request("GET", f"/containers/{_q(container)}/export"),
                            output))


def _path_stat(resp_headers: dict[str, str]) -> dict[str, Any]:
    import base64

    h = resp_headers.get("x-docker-container-path-stat")
    return json.loads(base64.b64decode(h)) if h else {}


def _split_cp(arg: str) -> tuple[str | None, str]:
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    c, _, p = arg.partition(":")
    return c, p


def cp(src: str = typer.Argument(..., metavar="SRC"),
       dst: str = typer.Argument(..., metavar="DEST"),
       archive: bool = typer.Option(False, "-a", "--archive", help="Archive mode (copy all "
                                    "uid/gid information)"),
       follow_link: bool = typer.Option(False, "-L", "--follow-link")) -> None:
    """Copy files/folders between a container and the local filesystem"""
    sc, sp = _split_cp(src)
    dc, dp = _split_cp(dst)
    if sc and dc:
        fail("copying between containers is not supported")
    if not sc and not dc:
        fail("must specify at least one container source")
    if sc:
        _cp_from(sc, sp, dp, follow_link)
    else:
        _cp_to(sp, dc, dp, archive, follow_link)


def _cp_from(container: str, path: str, dest: str, follow: bool) -> None:
    import io
    import tarfile

    from .client import APIError

    c = client()
    try:
        r = c.request("GET", f"/containers/{_q(container)}/archive", {"path": path})
    except APIError as e:
        fail(f"Error: No such container:path: {container}:{path}" if e.status == 404 else
             f"Error response from daemon: {e.message}")
    if dest == "-":
        _stream_to(r, None)
        return
    stat = _path_stat(r.headers)
    data = r.read()
    r.close()
    src_base = stat.get("name") or os.path.basename(path.rstrip("/"))
    if os.path.isdir(dest):
        if path.endswith("/.") :
            target_root, rename = dest, None  # contents of the directory
        else:
            target_root, rename = dest, None
    else:
        if dest.endswith("/"):
            fail(f"Error: destination directory {dest} must exist")
        target_root, rename = os.path.dirname(os.path.abspath(dest)), os.path.basename(dest)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
        strip_contents = path.endswith("/.")
        for m in members:
            name = m.name
            if strip_contents:
                parts = name.split("/", 1)
                if len(parts) == 1:
                    continue
                name = parts[1]
            elif rename is not None:
                first, sep, rest = name.partition("/")
                if first == src_base:
                    name = rename + sep + rest
            m.name = name
            t.extract(m, target_root, set_attrs=True, numeric_owner=True,
                      filter="fully_trusted") if sys.version_info >= (3, 12) else \
                t.extract(m, target_root, set_attrs=True, numeric_owner=True)


def _cp_to(src: str, container: str, path: str, archive: bool, follow: bool) -> None:
    import io
    import tarfile

    from .client import APIError

    c = client()
    params = {"path": path, "noOverwriteDirNonDir": "true", "copyUIDGID": archive or None}
    if src == "-":
        def body():
            while True:
                chunk = sys.stdin.buffer.read(1 << 20)
                if not chunk:
                    return
                yield chunk
        call(lambda: c.request("PUT", f"/containers/{_q(container)}/archive", params, body(),
                               {"Content-Type": "application/x-tar"}).close())
        return
    if not os.path.lexists(src):
        fail(f"lstat {os.path.abspath(src)}: no such file or directory")
    # Where does it go: into an existing directory, or renamed to the target?
    dest_dir, arcname = path, os.path.basename(os.path.abspath(src))
    try:
        r = c.request("HEAD", f"/containers/{_q(container)}/archive", {"path": path})
        stat = _path_stat(r.headers)
        r.close()
        is_dir = bool(stat.get("mode", 0) & (1 << 31))
        if not is_dir:
            if os.path.isdir(src):
                fail("Error: cannot copy directory to file" if False else
                     f"Error response from daemon: cannot overwrite non-directory "
                     f"\"{path}\" with directory \"{src}\"")
            dest_dir, arcname = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(
                path.rstrip("/"))
    except APIError as e:
        if e.status != 404:
            fail(f"Error response from daemon: {e.message}")
        if path.endswith("/"):
            fail(f"Error response from daemon: Could not find the file {path} in container "
                 f"{container}")
        dest_dir, arcname = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(
            path.rstrip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      dereference=follow) as t:
        if src.endswith("/.") and os.path.isdir(src):
            for e in sorted(os.listdir(src)):
                t.add(os.path.join(src, e), arcname=e if arcname is None else
                      os.path.join(arcname, e) if not os.path.isdir(path) else e)
        else:
            t.add(src, arcname=arcname)
    call(lambda: c.request("PUT", f"/containers/{_q(container)}/archive",
                           dict(params, path=dest_dir), buf.getvalue(),
                           {"Content-Type": "application/x-tar"}).close())


# --- stats, prune -------------------------------------------------------------

def _stats_row(name: str, s: dict[str, Any], no_trunc: bool) -> dict[str, str]:
    from .formatter import bytes_size
    from ..units import human_size

    cpu = s.get("cpu_stats") or {}
    pre = s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    cpu_pct = cpu_delta / sys_delta * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = s.get("memory_stats") or {}
    mstats = mem.get("stats") or {}
    usage = mem.get("usage", 0)
    if "total_inactive_file" in mstats and mstats["total_inactive_file"] < usage:
        usage -= mstats["total_inactive_file"]
    elif "inactive_file" in mstats and mstats["inactive_file"] < usage:
        usage -= mstats["inactive_file"]
    limit = mem.get("limit", 0)
    mem_pct = usage / limit * 100.0 if limit else 0.0
    rx = tx = 0
    for n in (s.get("networks") or {}).values():
        rx += n.get("rx_bytes", 0)
        tx += n.get("tx_bytes", 0)
    rd = wr = 0
    for e in ((s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []):
        op = (e.get("op") or "").lower()
        if op == "read":
            rd += e.get("value", 0)
        elif op == "write":
            wr += e.get("value", 0)
    running = bool(s.get("read")) and not s.get("read", "").startswith("0001")
    pids = (s.get("pids_stats") or {}).get("current", 0)
    return {"Container": name, "ID": s.get("id", "") if no_trunc else s.get("id", "")[:12],
            "Name": (s.get("name") or "").lstrip("/") or "--",
            "CPUPerc": f"{cpu_pct:.2f}%", "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
            "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": f"{human_size(rx, 3)} / {human_size(tx, 3)}",
            "BlockIO": f"{human_size(rd, 3)} / {human_size(wr, 3)}",
            "PIDs": str(pids) if running or pids else "0"}


def stats(containers: Optional[List[str]] = typer.Argument(None, metavar="[CONTAINER...]"),
          all: bool = typer.Option(False, "-a", "--all"),
          format: Optional[str] = typer.Option(None, "--format"),
          no_stream: bool = typer.Option(False, "--no-stream"),
          no_trunc: bool = typer.Option(False, "--no-trunc")) -> None:
    """Display a live stream of container(s) resource usage statistics"""
    import time

    from .client import APIError
    from .output import print_rows

    c = client()
    names = list(containers or [])
    if not names:
        items = call(lambda: c.get_json("/containers/json", {"all": all or None}))
        names = [i["Id"] if no_trunc else i["Id"][:12] for i in items]
    fmt = format if format and format != "table" else (
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
        "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
    while True:
        rows = []
        for n in names:
            try:
                s = c.get_json(f"/containers/{_q(n)}/stats", {"stream": 0})
            except APIError as e:
                fail(f"Error response from daemon: {e.message}")
            rows.append(_stats_row(n, s, no_trunc))
        if not no_stream:
            sys.stdout.write("\033[2J\033[H")
        print_rows(fmt, rows, STATS_HEADERS)
        sys.stdout.flush()
        if no_stream:
            return
        time.sleep(0.5)


def prune(force: bool = typer.Option(False, "-f", "--force"),
          filter: Optional[List[str]] = typer.Option(None, "--filter")) -> None:
    """Remove all stopped containers"""
    from .opts import filters_param
    from ..units import human_size

    if not force:
        sys.stdout.write("WARNING! This will remove all stopped containers.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return
    out = call(lambda: client().post_json("/containers/prune", {"filters": filters_param(filter)}))
    deleted = out.get("ContainersDeleted") or []
    if deleted:
        print("Deleted Containers:")
        for d in deleted:
            print(d)
        print()
    print(f"Total reclaimed space: {human_size(out.get('SpaceReclaimed', 0))}")


# --- registration -------------------------------------------------------------

COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("run", run, {"context_settings": FLAG_CTX}),
    ("create", create, {"context_settings": FLAG_CTX}),
    ("start", start, {}), ("stop", stop, {}), ("restart", restart, {}), ("kill", kill, {}),
    ("rm", rm, {}), ("wait", wait, {}), ("ps", ps, {}), ("logs", logs, {}),
    ("attach", attach, {}),
    ("exec", exec_, {"context_settings": FLAG_CTX}),
    ("top", top, {"context_settings": {"allow_interspersed_args": False,
                                       "ignore_unknown_options": True}}),
    ("pause", pause, {}), ("unpause", unpause, {}), ("rename", rename, {}), ("diff", diff, {}),
    ("commit", commit, {}), ("cp", cp, {}), ("export", export, {}), ("stats", stats, {}),
    ("port", port, {}),
]

for _name, _fn, _kw in COMMANDS:
    app.command(_name, **_kw)(_fn)
app.command("ls")(ps)
app.command("list", hidden=True)(ps)
app.command("remove", hidden=True)(rm)
app.command("prune")(prune)
app.command("inspect")(inspect_container)
