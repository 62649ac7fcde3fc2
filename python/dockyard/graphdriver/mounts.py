"""Reading the mount table (`/proc/self/mountinfo`)."""

from __future__ import annotations

import os
import re
import stat

_ESC = re.compile(r"\\([0-7]{3})")


def _unescape(s: str) -> str:
    return _ESC.sub(lambda m: chr(int(m.group(1), 8)), s)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, in mount order."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                out.append(_unescape(fields[4]))
    return out


def is_mount_point(path: str | os.PathLike) -> bool:
    """`os.path.ismount` for a directory the engine made (no symlink in the
    path to resolve): two lstats, where `ismount` resolves the parent's
    real path with one per component (a dozen on a layer's `merged`)."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return False  # as ismount: a symlink is never a mount point
        up = os.lstat(os.path.join(path, ".."))  # the kernel's `..` crosses a mount
    except OSError:
        return False
    return st.st_dev != up.st_dev or st.st_ino == up.st_ino


def is_mounted(path: str | os.PathLike) -> bool:
    p = os.path.realpath(path)
    return p in mount_points()


def mounts_under(path: str | os.PathLike) -> list[str]:
    """Mount points at or below `path`, deepest (last mounted) first."""
    root = os.path.realpath(path).rstrip("/") or "/"
    pre = root + "/"
    found = [m for m in mount_points() if m == root or m.startswith(pre)]
    return list(reversed(found))
