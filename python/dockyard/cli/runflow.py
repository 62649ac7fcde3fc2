"""How `run` and `create` run, after their flags are parsed (runflags.py)
and their request built (runconfig.py): create the container (pulling the
image when it is missing), then for `run` attach, start, wait and exit with
the container's status, with docker's messages and exit codes
(cli/command/container/{run,create}.go). The fast path (fast.py) and the
Typer commands (container/run.py) both end here.
"""

from __future__ import annotations

import os
import sys

from . import fastjson as json
from .client import APIError, ConnectError, message_error
from .common import client
from .runconfig import build_create
from .runflags import PROG, UsageError, parse_args

TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any


def report_error(cmd: str, msg: str, with_help: bool) -> None:
    """docker's reportError: `dockyard: <msg>.` [+ `See 'dockyard <cmd> --help'.`]"""
    s = msg.rstrip(".") + "."
    if with_help:
        s += f"\nSee '{PROG} {cmd} --help'."
    print(f"{PROG}: " + s, file=sys.stderr)


def start_error_code(msg: str) -> int:
    """docker's runStartContainerErr."""
    if ("executable file not found" in msg or "no such file or directory" in msg
            or "system cannot find the file specified" in msg):
        return 127
    if "permission denied" in msg:  # docker 20.10 checks EACCES only (not EISDIR)
        return 126
    return 125


def display_json_messages(resp: Any, out: Any) -> None:
    """jsonmessage.DisplayJSONMessagesStream for a non-terminal: progress
    bars are left out; raises APIError on an error message."""
    for line in resp.iter_lines():
        try:
            jm = json.loads(line)
        except ValueError:
            continue
        err = message_error(jm)
        if err is not None:
            raise APIError(500, err)
        if "aux" in jm:
            continue
        pd = jm.get("progressDetail") or {}
        if pd.get("current", 0) > 0 or pd.get("total", 0) > 0:
            continue
        s = (f"{jm['id']}: " if jm.get("id") else "") + (jm.get("status") or "")
        if jm.get("progress") and not pd:
            s += " " + jm["progress"]
        if jm.get("stream"):
            out.write(jm["stream"])
        else:
            out.write(s + "\n")
        out.flush()


def pull_image(c: Any, image: str, platform: str | None, quiet: bool, out: Any) -> None:
    from .. import reference

    ref = reference.parse_normalized(image)
    tag = ref.digest or ref.tag or "latest"
    params = {"fromImage": ref.familiar_name, "tag": tag, "platform": platform or None}
    resp = c.request("POST", "/images/create", params, headers={"X-Registry-Auth": "e30="})
    try:
        display_json_messages(resp, open(os.devnull, "w") if quiet else out)
    finally:
        resp.close()


def _tagged(image: str) -> str:
    from .. import reference

    try:
        ref = reference.parse_normalized(image)
    except Exception:
        return image
    if not ref.digest and not ref.tag:
        ref = ref.with_default_tag()
    return reference.familiar_string(ref)


def create_container(c: Any, opts: dict[str, Any], body: dict[str, Any],
                     query: dict[str, Any]) -> str:
    """docker's createContainer: create, and on a missing image pull it
    (unless --pull=never) and create again. Raises APIError."""
    image = body["Image"]
    pull = opts.get("pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise UsageError(f'invalid pull option: \'{pull}\': must be one of "always", '
                         '"missing" or "never"')
    if opts.get("cidfile") and os.path.exists(opts["cidfile"]):
        raise APIError(0, f"Container ID file found, make sure the other container isn't "
                       f"running or delete {opts['cidfile']}")
    if pull == "always":
        pull_image(c, image, opts.get("platform"), opts.get("quiet"), sys.stderr)
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    try:
        r = c.request("POST", "/containers/create", query, data, hdrs)
    except APIError as e:
        if e.status != 404 or "image" not in e.message.lower() or pull == "never":
            raise
        print(f"Unable to find image '{_tagged(image)}' locally", file=sys.stderr)
        pull_image(c, image, opts.get("platform"), opts.get("quiet"), sys.stderr)
        r = c.request("POST", "/containers/create", query, data, hdrs)
    try:
        resp = r.json()
    finally:
        r.close()
    for w in resp.get("Warnings") or []:
        print(f"WARNING: {w}", file=sys.stderr)
    if opts.get("cidfile"):
        with open(opts["cidfile"], "w") as f:
            f.write(resp["Id"])
    return resp["Id"]


def run_create(argv: list[str]) -> int:
    """`docker create`: prints the new container's ID."""
    try:
        opts, changed, image, cmd = parse_args(argv, "create")
    except UsageError as e:
        print(f"{e}\nSee '{PROG} create --help'.", file=sys.stderr)
        return 125
    return create_parsed(opts, changed, image, cmd)


def create_parsed(opts: dict[str, Any], changed: set[str], image: str, cmd: list[str]) -> int:
    try:
        body, query = build_create(opts, changed, image, cmd, run=False)
        cid = create_container(client(), opts, body, query)
    except UsageError as e:
        print(f"{e}\nSee '{PROG} create --help'.", file=sys.stderr)
        return 125
    except APIError as e:
        print(f"Error response from daemon: {e.message}" if e.status else e.message,
              file=sys.stderr)
        return 1
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(cid)
    return 0


def run_run(argv: list[str]) -> int:
    """`docker run`: create, attach, start, wait; returns the exit code."""
    try:
        opts, changed, image, cmd = parse_args(argv, "run")
    except UsageError as e:
        print(f"{e}\nSee '{PROG} run --help'.", file=sys.stderr)
        return 125
    return run_parsed(opts, changed, image, cmd)


def run_parsed(opts: dict[str, Any], changed: set[str], image: str, cmd: list[str]) -> int:
    try:
        body, query = build_create(opts, changed, image, cmd, run=True)
    except UsageError as e:
        print(f"{e}\nSee '{PROG} run --help'.", file=sys.stderr)
        return 125
    try:
        c = client()
        cid = create_container(c, opts, body, query)
    except UsageError as e:
        report_error("run", str(e), True)
        return 125
    except APIError as e:
        report_error("run", f"Error response from daemon: {e.message}" if e.status else
                     e.message, True)
        return 125
    except ConnectError as e:
        report_error("run", str(e), True)
        return 125
    try:
        return attach_start_wait(c, cid, body, opts)
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        return 125


def attach_start_wait(c: Any, cid: str, body: dict[str, Any], opts: dict[str, Any]) -> int:
    from . import streams

    tty = body["Tty"]
    a_in, a_out, a_err = body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]
    if opts.get("sig_proxy", True) and not tty and (a_out or a_err):
        streams.forward_signals(
            lambda sig: c.request("POST", f"/containers/{cid}/kill", {"signal": sig}).close())
    if not a_out and not a_err:
        print(cid)
        sys.stdout.flush()
    h = None
    keys = streams.detach_keys_for(opts.get("detach_keys"))
    if a_in or a_out or a_err:
        try:
            h = c.hijack("POST", f"/containers/{cid}/attach",
                         {"stream": 1, "stdin": int(a_in), "stdout": int(a_out),
                          "stderr": int(a_err), "detachKeys": keys})
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
    wait = None
    if a_out or a_err:
        cond = "removed" if body["HostConfig"]["AutoRemove"] else "next-exit"
        wait = c.request("POST", f"/containers/{cid}/wait", {"condition": cond})
    try:
        c.request("POST", f"/containers/{cid}/start").close()
    except APIError as e:
        if h:
            h.close()
        report_error("run", f"Error response from daemon: {e.message}", False)
        if wait is not None and body["HostConfig"]["AutoRemove"]:
            try:
                wait.read()
            except Exception:
                pass
        return start_error_code(e.message)
    if h is None:
        return 0
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: c.request(
            "POST", f"/containers/{cid}/resize", {"h": hh, "w": ww}).close())
    try:
        streams.stream(h, tty, a_in, keys)
    except streams.DetachError:
        return 0
    finally:
        h.close()
    if wait is None:
        return 0
    try:
        res = json.loads(wait.read() or b"{}")
    finally:
        wait.close()
    if (res.get("Error") or {}).get("Message"):
        print(f"Error response from daemon: {res['Error']['Message']}", file=sys.stderr)
        return 125
    return int(res.get("StatusCode", 0))
