"""Commands that stream a container's stdio: attach (and `start -a`), logs,
exec."""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from ..client import APIError, path_quote
from ..common import call, client, fail
from ..opts import time_param
from .api import inspect_json, post


def attach_flow(name: str, start: bool, stdin: bool, detach_keys: str | None,
                sig_proxy: bool) -> int:
    """attach (and start): stream until the output ends, exit with the
    container's status."""
    from .. import streams

    c = client()
    info = inspect_json(name)
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
    detach_keys = streams.detach_keys_for(detach_keys)
    if sig_proxy and not tty:
        streams.forward_signals(lambda sig: post(f"/containers/{cid}/kill", {"signal": sig}))
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
            # docker's `start -a` returns the start's error as it is (its
            # "failed to start containers" is for starts without -a)
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: post(f"/containers/{cid}/resize",
                                                     {"h": hh, "w": ww}))
    try:
        streams.stream(h, tty, stdin, detach_keys)
    except streams.DetachError:
        if start:  # `start -a` leaves quietly, as docker's CLI
            return 0
        # docker's attach returns the escape as its error: message and status 1
        print("read escape sequence", file=sys.stderr)
        return 1
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
    raise SystemExit(attach_flow(container, False, not no_stdin, detach_keys, sig_proxy))


def logs(container: str = typer.Argument(...),
         details: bool = typer.Option(False, "--details", help="Show extra details provided "
                                      "to logs"),
         follow: bool = typer.Option(False, "-f", "--follow", help="Follow log output"),
         since: Optional[str] = typer.Option(None, "--since"),
         tail: str = typer.Option("all", "-n", "--tail"),
         timestamps: bool = typer.Option(False, "-t", "--timestamps"),
         until: Optional[str] = typer.Option(None, "--until")) -> None:
    """Fetch the logs of a container"""
    from ..streams import copy_output

    info = inspect_json(container)
    params = {"stdout": 1, "stderr": 1, "since": time_param(since),
              "until": time_param(until), "timestamps": timestamps or None,
              "follow": follow or None, "tail": tail, "details": details or None}

    def run() -> None:
        r = client().request("GET", f"/containers/{path_quote(container)}/logs", params)
        try:
            copy_output(r.read_chunk, info["Config"].get("Tty", False))
        finally:
            r.close()
    call(run)


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
    from .. import streams
    from ..runflags import UsageError
    from ..runopts import env_list

    try:
        envs = env_list(env_file or [], env or [])
    except UsageError as e:
        fail(str(e))
    c = client()
    info = inspect_json(container)
    if not info["State"].get("Running"):
        fail(f"Error response from daemon: Container {info['Id']} is not running")
    detach_keys = streams.detach_keys_for(detach_keys)
    body = {"User": user or "", "Privileged": privileged, "Tty": tty,
            "AttachStdin": interactive and not detach, "AttachStderr": not detach,
            "AttachStdout": not detach, "Detach": detach, "DetachKeys": detach_keys or "",
            "Env": envs or None, "WorkingDir": workdir or "", "Cmd": command}
    r = call(lambda: c.post_json(f"/containers/{path_quote(container)}/exec", body=body))
    eid = r["Id"]
    if detach:
        call(lambda: c.post_json(f"/exec/{eid}/start", body={"Detach": True, "Tty": tty}))
        return
    data = json.dumps({"Detach": False, "Tty": tty}).encode()
    h = call(lambda: c.hijack("POST", f"/exec/{eid}/start", body=data))
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: post(f"/exec/{eid}/resize", {"h": hh, "w": ww}))
    try:
        streams.stream(h, tty, interactive, detach_keys)
    except streams.DetachError:
        print("read escape sequence", file=sys.stderr)  # docker's exec: an error, status 1
        raise SystemExit(1)
    finally:
        h.close()
    try:
        res = c.get_json(f"/exec/{eid}/json")
    except APIError as e:
        fail(f"Error response from daemon: {e.message}")
    code = res.get("ExitCode") or 0
    if code:
        raise SystemExit(code)
