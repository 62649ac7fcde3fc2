"""`images`: the image table (docker's formatter.ImageContext) and the
command's work, without Typer: `cli/fast.py` runs `images` through here, and
so does the Typer command (`image.py`) for its --help and odd flags."""

from __future__ import annotations

import sys

from . import fastjson
from .common import call, client
from .formatter import IMAGE_HEADERS, created_at, short_id
from .opts import filters_param


def list_images_of(repository: str | None, all: bool, quiet: bool, no_trunc: bool,
                   digests: bool, filter: list[str] | None, format: str | None) -> None:
    """List the images (those of `repository` only, when given)."""
    from ..units import human_size, since

    params = {"all": all or None, "filters": filters_param(filter)}
    if repository:
        f = fastjson.loads(params["filters"] or "{}")
        f.setdefault("reference", {})[repository] = True
        params["filters"] = fastjson.dumps(f)
    imgs = call(lambda: client().get_json("/images/json", params))
    rows = []
    for img in imgs:
        tags = img.get("RepoTags") or []
        digs = img.get("RepoDigests") or []
        base = {
            "ID": short_id(img["Id"], no_trunc),
            "CreatedSince": since(img["Created"]),
            "CreatedAt": created_at(img["Created"]),
            "Size": human_size(img["Size"], 3),
            "VirtualSize": human_size(img.get("VirtualSize", img["Size"]), 3),
            "SharedSize": "N/A" if img.get("SharedSize", -1) < 0 else
            human_size(img["SharedSize"], 3),
            "UniqueSize": "N/A", "Containers": "N/A" if img.get("Containers", -1) < 0 else
            str(img["Containers"]),
        }
        entries: list[tuple[str, str, str]] = []
        if tags:
            for t in tags:
                repo, _, tag = t.rpartition(":")
                d = next((x.split("@", 1)[1] for x in digs if x.split("@")[0] == repo), "<none>")
                entries.append((repo, tag, d))
        elif digs:
            for x in digs:
                repo, _, d = x.partition("@")
                entries.append((repo, "<none>", d))
        else:
            entries.append(("<none>", "<none>", "<none>"))
        for repo, tag, d in entries:
            rows.append(dict(base, Repository=repo, Tag=tag, Digest=d))
    if quiet and not format:
        # One line a row, as docker prints it (an ID repeats for each tag).
        sys.stdout.write("".join(f"{r['ID']}\n" for r in rows))
        return
    from .output import print_rows

    if not format:
        cols = ["{{.Repository}}", "{{.Tag}}"] + (["{{.Digest}}"] if digests else []) + \
            ["{{.ID}}", "{{.CreatedSince}}", "{{.Size}}"]
        format = "table " + "\t".join(cols)
    print_rows(format, rows, IMAGE_HEADERS)
