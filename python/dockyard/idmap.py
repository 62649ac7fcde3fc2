"""User-namespace remapping (dockerd's `--userns-remap`): the user the daemon's
containers run as on the host, its subordinate ID ranges (/etc/subuid,
/etc/subgid) and the ID maps made from them. Container root is the first ID
of each range; `default` means the `dockremap` user, created (with ranges)
on first use as dockerd creates it. dockerd's messages throughout."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_USER = "dockremap"
RANGE_START = 100000
RANGE_LEN = 65536


class RemapError(Exception):
    """A --userns-remap value the daemon can't use; the message is dockerd's."""


#: (container ID, host ID, size), as in /proc/PID/uid_map.
Range = tuple[int, int, int]


@dataclass(frozen=True)
class IDMap:
    """A container's ID maps (contiguous container IDs from 0)."""

    uids: tuple[Range, ...]
    gids: tuple[Range, ...]

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the container's root."""
        return _to_host(0, self.uids), _to_host(0, self.gids)

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        return _to_host(uid, self.uids), _to_host(gid, self.gids)

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        return _to_container(uid, self.uids), _to_container(gid, self.gids)

    def ranges(self) -> tuple[list[Range], list[Range]]:
        """The Rust core's form (`_core.shift_ids`, `create_layer(id_map=)`)."""
        return list(self.uids), list(self.gids)

    def oci(self) -> dict[str, list[dict[str, int]]]:
        """linux.uidMappings / gidMappings (also the native runtime's spec)."""
        def one(rs: tuple[Range, ...]) -> list[dict[str, int]]:
            return [{"containerID": c, "hostID": h, "size": n} for c, h, n in rs]
        return {"uidMappings": one(self.uids), "gidMappings": one(self.gids)}


def _to_host(cid: int, ranges: tuple[Range, ...]) -> int:
    for c, h, n in ranges:
        if c <= cid < c + n:
            return h + cid - c
    raise RemapError(f"Container ID {cid} cannot be mapped to a host ID")


def _to_container(hid: int, ranges: tuple[Range, ...]) -> int:
    for c, h, n in ranges:
        if h <= hid < h + n:
            return c + hid - h
    raise RemapError(f"Host ID {hid} cannot be mapped to a container ID")


@dataclass(frozen=True)
class Remap:
    """The daemon's remapping: the user and group it resolved to, and the maps."""

    user: str
    group: str
    idmap: IDMap

    @property
    def setting(self) -> str:
        """`user:group`, as dockerd records the resolved setting."""
        return f"{self.user}:{self.group}"


# --- /etc/subuid, /etc/subgid -----------------------------------------------------
def parse_subid(path: str, name: str) -> list[tuple[int, int]]:
    """(start, length) of `name`'s ranges in `path` (all ranges for "ALL")."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split(":")
            if len(parts) != 3:
                raise RemapError("Cannot parse subuid/gid information: Format not correct "
                                 f"for {path} file")
            if parts[0] == name or name == "ALL":
                try:
                    out.append((int(parts[1]), int(parts[2])))
                except ValueError as e:
                    raise RemapError("String to int conversion failed during subuid/gid "
                                     f"parsing of {path}: {e}") from None
    return out


def _ranges(path: str, user: pwd.struct_passwd, what: str) -> tuple[Range, ...]:
    try:
        found = parse_subid(path, str(user.pw_uid)) or parse_subid(path, user.pw_name)
    except OSError as e:
        raise RemapError(f"Can't create ID mappings: open {path}: "
                         f"{(e.strerror or str(e)).lower()}") from None
    if not found:
        raise RemapError(f'Can\'t create ID mappings: no {what} ranges found for user '
                         f'"{user.pw_name}"')
    out, cid = [], 0
    for start, n in found:
        out.append((cid, start, n))
        cid += n
    return tuple(out)


def next_range_start(path: str) -> int:
    """dockerd's search: from 100000, past every range that overlaps."""
    start = RANGE_START
    for s, n in sorted(parse_subid(path, "ALL")):
        lo, hi = start, start + RANGE_LEN
        if s <= lo <= s + n or s <= hi <= s + n:
            start = s + n
    return start


def _run(*argv: str) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode:
        raise RemapError(f"failed to add user with error: exit status {p.returncode}; "
                         f"output: {(p.stdout + p.stderr)!r}")


def add_namespace_user(name: str) -> None:
    """dockerd's AddNamespaceRangesUser: a system user and group, then 65536
    subordinate uids and gids each, unless it already has some."""
    if shutil.which("adduser"):
        argv = ["adduser", "--system", "--shell", "/bin/false", "--no-create-home",
                "--disabled-login", "--disabled-password", "--group", name]
    elif shutil.which("useradd"):
        argv = ["useradd", "-r", "-s", "/bin/false", name]
    else:
        raise RemapError(f'Error adding user "{name}": cannot add user; no useradd/adduser '
                         "binary found")
    try:
        _run(*argv)
    except RemapError as e:
        raise RemapError(f'Error adding user "{name}": {e}') from None
    for path, flag in ((SUBUID, "-v"), (SUBGID, "-w")):
        if not os.path.exists(path) or not parse_subid(path, name):
            start = next_range_start(path) if os.path.exists(path) else RANGE_START
            p = subprocess.run(["usermod", flag, f"{start}-{start + RANGE_LEN - 1}", name],
                               capture_output=True, text=True)
            if p.returncode:
                raise RemapError("Couldn't create subordinate ID ranges: Unable to add "
                                 f"sub{'uid' if flag == '-v' else 'gid'} range to user: "
                                 f"{name!r}; output: {p.stdout + p.stderr}, "
                                 f"err: exit status {p.returncode}")


def _lookup(kind: str, key: str) -> str:
    """A name from the passwd or group database, by name or number."""
    try:
        if kind == "passwd":
            return (pwd.getpwuid(int(key)) if key.isdigit() else pwd.getpwnam(key)).pw_name
        return (grp.getgrgid(int(key)) if key.isdigit() else grp.getgrnam(key)).gr_name
    except (KeyError, OverflowError):
        raise LookupError(f'getent unable to find entry "{key}" in {kind} database') from None


def parse_remapped_root(value: str) -> tuple[str, str]:
    """dockerd's parseRemappedRoot: user[:group] by name or ID -> (user, group);
    `default` is dockremap, created when missing."""
    parts = value.split(":")
    if len(parts) > 2:
        raise RemapError(f'Invalid user/group specification in --userns-remap: "{value}"')
    user = group = ""
    if _is_int32(parts[0]):
        try:
            user = _lookup("passwd", parts[0])
        except LookupError as e:
            raise RemapError(f"Uid {parts[0]} has no entry in /etc/passwd: {e}") from None
        if len(parts) == 1:
            try:
                group = _lookup("group", parts[0])
            except LookupError as e:
                raise RemapError(f"Gid {parts[0]} has no entry in /etc/group: {e}") from None
    else:
        name = DEFAULT_USER if parts[0] == "default" else parts[0]
        try:
            user = _lookup("passwd", name)
        except LookupError as e:
            if parts[0] != "default":
                raise RemapError(f'Error during uid lookup for "{name}": {e}') from None
            try:
                add_namespace_user(DEFAULT_USER)
            except (RemapError, OSError) as e2:
                raise RemapError(f'Error during "{DEFAULT_USER}" user creation: {e2}') from None
            return DEFAULT_USER, DEFAULT_USER
        if len(parts) == 1:
            try:
                group = _lookup("group", name)
            except LookupError as e:
                raise RemapError(f'Error during gid lookup for "{name}": {e}') from None
    if len(parts) == 2:
        if _is_int32(parts[1]):
            try:
                group = _lookup("group", parts[1])
            except LookupError as e:
                raise RemapError(f"Gid {parts[1]} has no entry in /etc/passwd: {e}") from None
        else:
            try:
                _lookup("group", parts[1])
            except LookupError as e:
                raise RemapError(f'Error during groupname lookup for "{parts[1]}": {e}') \
                    from None
            group = parts[1]
    return user, group


def _is_int32(s: str) -> bool:
    try:
        return -(1 << 31) <= int(s, 10) < (1 << 31)
    except ValueError:
        return False


def setup(value: str) -> Remap | None:
    """The daemon's remapping for `--userns-remap=value`; None for root (dockerd
    then warns and runs without user namespaces)."""
    user, group = parse_remapped_root(value)
    if user == "root":
        return None
    pw = pwd.getpwnam(user)
    return Remap(user, group, IDMap(_ranges(SUBUID, pw, "subuid"), _ranges(SUBGID, pw, "subgid")))


def remapped_root(root: str, idmap: IDMap) -> str:
    """dockerd's setupDaemonRoot: <root>/<uid>.<gid>, 0710 and group-owned by
    the remapped root's gid (as <root> itself), so container root can reach
    its layers but not read the daemon's files; every directory above must
    let it pass (o+x)."""
    uid, gid = idmap.root
    os.makedirs(root, mode=0o711, exist_ok=True)
    sub = os.path.join(root, f"{uid}.{gid}")
    for d in (root, sub):
        os.makedirs(d, mode=0o710, exist_ok=True)
        os.chown(d, os.getuid(), gid)
        os.chmod(d, 0o710)
    d = sub
    while True:
        d = os.path.dirname(d)
        if d == "/":
            break
        st = os.stat(d)
        ok = (st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010)
              or (st.st_uid == uid and st.st_mode & 0o100))
        if not ok:
            raise RemapError(f"a subdirectory in your graphroot path ({sub}) restricts access "
                             "to the remapped root uid/gid; please fix by allowing 'o+x' "
                             "permissions on existing directories")
    return sub
