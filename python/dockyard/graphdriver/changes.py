"""`docker diff` for layers: a list of {"Path", "Kind"} (0 modify, 1 add,
2 delete), computed either from an overlay upper dir (native) or by comparing
two full trees (naive: vfs, btrfs), following moby's `pkg/archive` rules:

* a directory that only changed because something inside it changed is still
  reported as modified (so permissions are saved), before its children;
* directories compare on mode/owner/rdev only, other files also on size and mtime.
"""

from __future__ import annotations

import os
import stat
from typing import Iterable

from ..rootless import rootless_uid

MODIFY, ADD, DELETE = 0, 1, 2

OPAQUE = "trusted.overlay.opaque"
USER_OPAQUE = "user.overlay.opaque"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        # the rootless daemon mounts overlay with userxattr: user.overlay.opaque
        name = OPAQUE if rootless_uid() is None else USER_OPAQUE
        return os.getxattr(path, name, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    if not stat.S_ISDIR(new.st_mode):
        return old.st_mtime_ns != new.st_mtime_ns or old.st_size != new.st_size
    return False


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def tree_changes(new_root: str, old_root: str | None) -> list[dict]:
    """Changes from `old_root` (None: empty) to `new_root`, both full trees."""
    out: list[dict] = []

    def walk(rel: str, new_dir: str, old_dir: str | None, added: bool) -> None:
        start = len(out)
        old_names = set(_listdir(old_dir)) if old_dir else set()
        for name in _listdir(new_dir):
            p = f"{rel}/{name}"
            np = os.path.join(new_dir, name)
            nst = os.lstat(np)
            op = os.path.join(old_dir, name) if old_dir and name in old_names else None
            child_added = False
            if op is None:
                out.append({"Path": p, "Kind": ADD})
                child_added = True
            else:
                old_names.discard(name)
                ost = os.lstat(op)
                if _differs(ost, nst) or _capability(op) != _capability(np):
                    out.append({"Path": p, "Kind": MODIFY})
                    child_added = True
            if stat.S_ISDIR(nst.st_mode):
                sub_old = op if op is not None and stat.S_ISDIR(os.lstat(op).st_mode) else None
                walk(p, np, sub_old, child_added)
        for name in sorted(old_names):
            out.append({"Path": f"{rel}/{name}", "Kind": DELETE})
        if len(out) > start and not added and rel:
            out.insert(start, {"Path": rel, "Kind": MODIFY})

    walk("", new_root, old_root, True)
    return out


def _lookup(lowers: list[str], rel: str) -> os.stat_result | None:
    """Stat `rel` in the union of `lowers` (uppermost first), honouring
    whiteouts and opaque directories."""
    parts = rel.strip("/").split("/")
    for layer in lowers:
        path = os.path.join(layer, *parts)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            # An opaque parent dir in this layer hides everything below.
            if any(_opaque(os.path.join(layer, *parts[:i])) for i in range(1, len(parts))):
                return None
            continue
        if _is_whiteout(st):
            return None
        return st
    return None


def upper_changes(upper: str, lowers: list[str]) -> list[dict]:
    """Changes recorded in an overlay upper dir over `lowers` (uppermost first)."""
    out: list[dict] = []
    changed_dirs: set[str] = set()

    def add_parent(p: str) -> None:
        parent = os.path.dirname(p)
        if parent != "/" and parent not in changed_dirs:
            out.append({"Path": parent, "Kind": MODIFY})
            changed_dirs.add(parent)

    def walk(rel: str, d: str, hidden: bool) -> None:
        # hidden: inside an opaque dir, nothing from the lowers shows through.
        for name in _listdir(d):
            p = f"{rel}/{name}"
            fp = os.path.join(d, name)
            st = os.lstat(fp)
            is_dir = stat.S_ISDIR(st.st_mode)
            low = None if hidden else _lookup(lowers, p)
            opaque = is_dir and _opaque(fp)
            kind: int | None
            if _is_whiteout(st):
                kind = DELETE
            elif opaque and low is not None:
                kind = DELETE  # replaced wholesale (moby reports it deleted)
            elif low is None:
                kind = ADD
            elif is_dir and stat.S_ISDIR(low.st_mode) and not _differs(low, st) \
                    and st.st_mtime_ns == low.st_mtime_ns:
                kind = None  # only a parent of changes
            else:
                kind = MODIFY
            if kind is not None:
                if kind in (ADD, DELETE):
                    add_parent(p)
                out.append({"Path": p, "Kind": kind})
            if is_dir:
                if kind is not None:
                    changed_dirs.add(p)
                walk(p, fp, hidden or opaque)

    walk("", upper, False)
    return out


def changed_size(root: str, changes: Iterable[dict]) -> int:
    """Bytes of the regular files added or modified (moby's DiffSize)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for c in changes:
        if c["Kind"] == DELETE:
            continue
        try:
            st = os.lstat(os.path.join(root, c["Path"].lstrip("/")))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
