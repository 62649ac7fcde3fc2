"""`docker commit`: a new image from a container's changes (its read-write
layer against its init layer) on top of its image, with its config, or the
one given, merged as dockerd merges it."""

from __future__ import annotations

import json
import shutil
from typing import Any

from .. import _core, reference
from ..changes import apply_changes
from ..errors import Conflict, InvalidParameter
from ..imageconfig import DOCKER_VERSION, container_config, encode, now_rfc3339
from .pause import paused_for
from .records import ContainerRecords

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def merge_config(user: dict[str, Any], image: dict[str, Any]) -> None:
    """moby's daemon `merge`: fill what the new config leaves empty from the
    container's config."""
    if not user.get("User"):
        user["User"] = image.get("User") or ""
    if image.get("ExposedPorts"):
        ports = dict(image["ExposedPorts"])
        ports.update(user.get("ExposedPorts") or {})
        user["ExposedPorts"] = ports
    if not user.get("Env"):
        user["Env"] = image.get("Env")
    else:
        keys = {e.split("=", 1)[0] for e in user["Env"]}
        user["Env"] = list(user["Env"]) + [e for e in image.get("Env") or []
                                           if e.split("=", 1)[0] not in keys]
    if image.get("Labels"):
        labels = dict(image["Labels"])
        labels.update(user.get("Labels") or {})
        user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = image.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = image.get("Entrypoint")
    if not user.get("Healthcheck") and image.get("Healthcheck"):
        user["Healthcheck"] = image["Healthcheck"]
    if not user.get("WorkingDir"):
        user["WorkingDir"] = image.get("WorkingDir") or ""
    if image.get("Volumes"):
        vols = dict(image["Volumes"])
        vols.update(user.get("Volumes") or {})
        user["Volumes"] = vols
    if not user.get("StopSignal"):
        user["StopSignal"] = image.get("StopSignal") or ""


def commit(svc: ContainerRecords, ref: str, repo: str = "", tag: str = "",
           comment: str = "", author: str = "", pause_it: bool = True,
           changes_: list[str] | None = None, config: dict[str, Any] | None = None) -> str:
    store = svc.store
    c = svc.get(ref)
    ref_obj = None
    if repo:
        ref_obj = reference.parse_normalized(f"{repo}:{tag}" if tag else repo)
        if ref_obj.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if ref_obj.name == "docker.io/library/scratch":
            raise InvalidParameter("'scratch' is a reserved name")
        ref_obj = ref_obj.with_default_tag()
    elif tag:
        raise InvalidParameter("tag requires repo")
    if c.state.get("Dead") or c.state.get("RemovalInProgress"):
        raise Conflict(f"You cannot commit container {c.id} which is being removed")
    parent = store.images.get(c.image_id)
    new_cfg = json.loads(json.dumps(config if config else c.config))
    if changes_:
        apply_changes(new_cfg, changes_)
    merge_config(new_cfg, c.config)
    tmpdir = store.new_tempdir()
    try:
        tarpath = str(tmpdir / "layer.tar")
        with paused_for(svc, c, pause_it):
            info = svc.driver.diff(c.id, f"{c.id}-init", tarpath, "none")
        empty = info.diff_id == EMPTY_LAYER_DIFF_ID
        if not empty:
            def extract(target: str, whiteouts: str, split: str):
                return _core.extract_layer_file(tarpath, target, whiteouts, split)

            store.layers.register(parent.top_layer, extract)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    pcfg = parent.config
    created = now_rfc3339()
    hist: dict[str, Any] = {"created": created}
    if author:
        hist["author"] = author
    hist["created_by"] = " ".join(c.config.get("Cmd") or [])
    if comment:
        hist["comment"] = comment
    if empty:
        hist["empty_layer"] = True
    rootfs = dict(pcfg.get("rootfs") or {"type": "layers"})
    diff_ids = list(rootfs.get("diff_ids") or [])
    if not empty:
        diff_ids.append(info.diff_id)
    rootfs = {"type": rootfs.get("type") or "layers", "diff_ids": diff_ids}
    cfg_out = container_config(new_cfg)
    # The image from the container's config is recorded as created: keep its order.
    raw: dict[str, Any] = {
        "architecture": pcfg.get("architecture") or "amd64",
        "config": cfg_out,
        "container": c.id,
        "container_config": container_config(c.config),
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": list(pcfg.get("history") or []) + [hist],
        "os": pcfg.get("os") or "linux",
        "rootfs": rootfs,
    }
    if author:
        raw["author"] = author
    if comment:
        raw["comment"] = comment
    if pcfg.get("variant"):
        raw["variant"] = pcfg["variant"]
    raw = {k: raw[k] for k in sorted(raw)}
    img = store.images.create(encode(raw), parent=parent.id,
                              refs=[str(ref_obj)] if ref_obj is not None else [])
    return img.id
