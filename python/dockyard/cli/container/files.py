"""Commands on a container's filesystem: diff, commit, export, cp."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, List, Optional

import typer

from ..client import APIError, path_quote
from ..common import call, client, fail
from ..opts import tag_reference


def diff(container: str = typer.Argument(...)) -> None:
    """Inspect changes to files or directories on a container's filesystem"""
    changes = call(lambda: client().get_json(f"/containers/{path_quote(container)}/changes"))
    for ch in changes or []:
        print(f"{'CAD'[ch['Kind']] if ch['Kind'] in (0, 1, 2) else '?'} {ch['Path']}")


def commit(container: str = typer.Argument(...),
           repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
           author: Optional[str] = typer.Option(None, "-a", "--author"),
           change: Optional[List[str]] = typer.Option(None, "-c", "--change"),
           message: Optional[str] = typer.Option(None, "-m", "--message"),
           pause: bool = typer.Option(True, "-p", "--pause/--no-pause")) -> None:
    """Create a new image from a container's changes"""
    repo = tag = None
    if repository:
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
    call(lambda: _stream_to(client().request("GET", f"/containers/{path_quote(container)}/export"),
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

    c = client()
    try:
        r = c.request("GET", f"/containers/{path_quote(container)}/archive", {"path": path})
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

    c = client()
    params = {"path": path, "noOverwriteDirNonDir": "true", "copyUIDGID": archive or None}
    if src == "-":
        def body():
            while True:
                chunk = sys.stdin.buffer.read(1 << 20)
                if not chunk:
                    return
                yield chunk
        call(lambda: c.request("PUT", f"/containers/{path_quote(container)}/archive", params,
                               body(), {"Content-Type": "application/x-tar"}).close())
        return
    if not os.path.lexists(src):
        fail(f"lstat {os.path.abspath(src)}: no such file or directory")
    # Where does it go: into an existing directory, or renamed to the target?
    dest_dir, arcname = path, os.path.basename(os.path.abspath(src))
    try:
        r = c.request("HEAD", f"/containers/{path_quote(container)}/archive", {"path": path})
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
    call(lambda: c.request("PUT", f"/containers/{path_quote(container)}/archive",
                           dict(params, path=dest_dir), buf.getvalue(),
                           {"Content-Type": "application/x-tar"}).close())
