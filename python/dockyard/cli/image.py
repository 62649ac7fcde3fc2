"""Image commands: images, import, tag, rmi, history, save, load, prune, and
the `image` group that holds them (`dockyard image ls` = `dockyard images`)."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List, Optional

import typer

from .common import call, client, fail
from .formatter import created_at, short_id
from .imagelist import list_images_of
from .opts import tag_reference

app = typer.Typer(help="Manage images", no_args_is_help=True, add_completion=False)

HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def list_images(repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
                all: bool = typer.Option(False, "-a", "--all", help="Show all images"),
                quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs"),
                no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
                digests: bool = typer.Option(False, "--digests", help="Show digests"),
                filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List images"""
    list_images_of(repository, all, quiet, no_trunc, digests, filter, format)


def import_image(file: str = typer.Argument(..., metavar="file|URL|-"),
                 repository: Optional[str] = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
                 change: Optional[List[str]] = typer.Option(None, "-c", "--change"),
                 message: Optional[str] = typer.Option(None, "-m", "--message"),
                 platform: Optional[str] = typer.Option(None, "--platform")) -> None:
    """Import the contents from a tarball to create a filesystem image"""
    from .client import json_messages

    params: dict = {"fromSrc": "-", "message": message, "changes": change or None,
                    "platform": platform}
    if repository:
        name, tag = tag_reference(repository)
        params["repo"] = name
        params["tag"] = tag
    if file == "-":
        src = sys.stdin.buffer
    elif "://" in file:
        fail("importing from a URL is not supported by Dockyard; download it and pass the file")
    else:
        try:
            src = open(file, "rb")
        except OSError as e:
            fail(f"open {file}: {e.strerror.lower() if e.strerror else e}")

    def body():
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                return
            yield chunk

    def run() -> None:
        resp = client().request("POST", "/images/create", params, body(),
                                {"Content-Type": "application/x-tar"})
        try:
            for msg in json_messages(resp):
                if msg.get("status"):
                    print(msg["status"])
        finally:
            resp.close()

    call(run)


def tag(source: str = typer.Argument(..., metavar="SOURCE_IMAGE[:TAG]"),
        target: str = typer.Argument(..., metavar="TARGET_IMAGE[:TAG]")) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"""
    from .client import path_quote

    name, t = tag_reference(target)
    call(lambda: client().request("POST", f"/images/{path_quote(source)}/tag",
                                  {"repo": name, "tag": t}).close())


def rmi(images: List[str] = typer.Argument(..., metavar="IMAGE [IMAGE...]"),
        force: bool = typer.Option(False, "-f", "--force"),
        no_prune: bool = typer.Option(False, "--no-prune")) -> None:
    """Remove one or more images"""
    from .client import APIError, ConnectError, path_quote

    failed = False
    for name in images:
        try:
            out = client().delete_json(f"/images/{path_quote(name)}",
                                       {"force": force or None, "noprune": no_prune or None})
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        except ConnectError as e:
            fail(str(e))
        for item in out or []:
            for k, v in item.items():
                print(f"{k}: {v}")
    if failed:
        raise SystemExit(1)


def history(image: str = typer.Argument(...),
            human: bool = typer.Option(True, "-H", "--human"),
            no_trunc: bool = typer.Option(False, "--no-trunc"),
            quiet: bool = typer.Option(False, "-q", "--quiet"),
            format: Optional[str] = typer.Option(None, "--format")) -> None:
    """Show the history of an image"""
    from .client import path_quote
    from ..units import human_size, since

    items = call(lambda: client().get_json(f"/images/{path_quote(image)}/history"))
    if quiet and not format:
        for h in items:
            print(short_id(h["Id"], no_trunc) if h["Id"] != "<missing>" else "<missing>")
        return
    rows = []
    for h in items:
        created_by = h.get("CreatedBy", "").replace("\t", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": h["Id"] if h["Id"] == "<missing>" else short_id(h["Id"], no_trunc),
            "CreatedSince": since(h["Created"]) if human else created_at(h["Created"]),
            "CreatedAt": created_at(h["Created"]),
            "CreatedBy": created_by,
            "Size": human_size(h["Size"], 3) if human else str(h["Size"]),
            "Comment": h.get("Comment", ""),
        })
    from .output import print_rows

    fmt = format or ("table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}"
                     "\t{{.Comment}}")
    print_rows(fmt, rows, HISTORY_HEADERS)


def save(images: List[str] = typer.Argument(..., metavar="IMAGE [IMAGE...]"),
         output: Optional[str] = typer.Option(None, "-o", "--output")) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)"""
    if output is None and sys.stdout.isatty():
        fail("cowardly refusing to save to a terminal. Use the -o flag or redirect")

    def run() -> None:
        resp = client().request("GET", "/images/get", {"names": images})
        out = open(output + ".tmp", "wb") if output else sys.stdout.buffer
        try:
            while True:
                chunk = resp.read_chunk(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        except BaseException:
            if output:
                os.unlink(output + ".tmp")
            raise
        finally:
            resp.close()
            if output:
                out.close()
        if output:
            os.replace(output + ".tmp", output)

    call(run)


def load(input: Optional[str] = typer.Option(None, "-i", "--input"),
         quiet: bool = typer.Option(False, "-q", "--quiet")) -> None:
    """Load an image from a tar archive or STDIN"""
    from .client import json_messages

    if input is None and sys.stdin.isatty():
        fail("requested load from stdin, but stdin is empty")
    src = open(input, "rb") if input else sys.stdin.buffer

    def body():
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                return
            yield chunk

    def run() -> None:
        resp = client().request("POST", "/images/load", {"quiet": quiet or None}, body(),
                                {"Content-Type": "application/x-tar"})
        try:
            for msg in json_messages(resp):
                if msg.get("stream"):
                    sys.stdout.write(msg["stream"])
        finally:
            resp.close()

    call(run)


def prune(all: bool = typer.Option(False, "-a", "--all"),
          force: bool = typer.Option(False, "-f", "--force"),
          filter: Optional[List[str]] = typer.Option(None, "--filter")) -> None:
    """Remove unused images"""
    from . import prune as pruning

    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if all else "WARNING! This will remove all dangling images.")
    if not force and not pruning.confirm(warning):
        return
    pruning.report(*pruning.images(all, filter))


def inspect_image(names: List[str] = typer.Argument(..., metavar="IMAGE [IMAGE...]"),
                  format: Optional[str] = typer.Option(None, "-f", "--format")) -> None:
    """Display detailed information on one or more images"""
    from .inspector import inspect_objects

    inspect_objects(names, format, "image")


app.command("ls")(list_images)
app.command("list", hidden=True)(list_images)
app.command("import")(import_image)
app.command("tag")(tag)
app.command("rm")(rmi)
app.command("history")(history)
app.command("save")(save)
app.command("load")(load)
app.command("prune")(prune)
app.command("inspect")(inspect_image)

# (command name, function, typer.command keywords): the top-level commands
# (`dockyard images`...), added by cli/main.py
COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("images", list_images, {}), ("import", import_image, {}), ("tag", tag, {}),
    ("rmi", rmi, {}), ("history", history, {}), ("save", save, {}), ("load", load, {}),
]
