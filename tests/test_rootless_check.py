"""`dockyard rootless check` (dockyard/rootless.py): each prerequisite of
rootless use, checked as an ordinary user of this test's own
(`dockyard-test-rl`, created here and removed at the end with its
subordinate ranges), on the real kernel: user namespaces, subordinate IDs, overlay with
userxattr mounted in a user namespace, XDG_RUNTIME_DIR's owner and mode.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import drop_subid_ranges

from dockyard import idmap
from dockyard.rootless import SUBID_MIN, check_host

USER = "dockyard-test-rl"


@pytest.fixture(scope="module")
def user():
    if shutil.which("useradd") is None:
        pytest.fail("useradd is needed (Debian's passwd package)")
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        drop_subid_ranges(USER)
        subprocess.run(["userdel", USER], capture_output=True)


def as_user(pw, env: dict[str, str] | None = None) -> dict[str, dict]:
    """check_host() run by `pw` (a forked child that drops to its IDs, so
    the code already imported is what runs), by check name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.environ.pop("XDG_RUNTIME_DIR", None)
            os.environ.update(env or {})
            os.environ["TMPDIR"] = "/tmp"
            out = [c.__dict__ for c in check_host()]
            os.write(w, json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the check failed in the child"
    return {c["name"]: c for c in json.loads(data)}


def test_an_ordinary_user_without_ranges(user):
    got = as_user(user)
    assert got["user namespaces"]["status"] == "ok"
    sub = got["subordinate IDs"]
    assert sub["status"] == "warn" and f"/etc/subuid: 0, /etc/subgid: 0 for {USER}" in sub["detail"]
    assert sub["fix"].startswith(f"usermod --add-subuids 100000-165535 --add-subgids "
                                 f"100000-165535 {USER}")
    # kernel 6.18: overlay mounts in a user namespace with userxattr
    assert got["overlay (userxattr)"] == {"name": "overlay (userxattr)", "status": "ok",
                                          "detail": "mounts in a user namespace", "fix": ""}
    rt = got["XDG_RUNTIME_DIR"]
    assert rt["status"] == "warn" and f"/tmp/dockyard-{user.pw_uid}" in rt["detail"]
    for c in got.values():
        assert c["status"] in ("ok", "warn"), c


def test_ranges_and_runtime_dir(user):
    with open(idmap.SUBUID, "a") as f:
        f.write(f"{USER}:200000:{SUBID_MIN}\n")
    with open(idmap.SUBGID, "a") as f:
        f.write(f"{USER}:200000:{SUBID_MIN}\n")
    # In /tmp itself: the user can't pass pytest's 0700 base directory.
    base = Path(tempfile.mkdtemp(prefix="dockyard-test-rl-"))
    try:
        base.chmod(0o755)
        mine = base / "mine"
        mine.mkdir(mode=0o700)
        os.chown(mine, user.pw_uid, user.pw_gid)
        got = as_user(user, {"XDG_RUNTIME_DIR": str(mine)})
        assert got["subordinate IDs"]["status"] == "ok"
        assert got["subordinate IDs"]["detail"] == f"{SUBID_MIN} uids and {SUBID_MIN} gids for {USER}"
        assert got["XDG_RUNTIME_DIR"] == {"name": "XDG_RUNTIME_DIR", "status": "ok",
                                          "detail": str(mine), "fix": ""}
        theirs = base / "root"
        theirs.mkdir(mode=0o755)
        got = as_user(user, {"XDG_RUNTIME_DIR": str(theirs)})
        assert got["XDG_RUNTIME_DIR"]["status"] == "warn"
        assert "not a 0700 directory of yours" in got["XDG_RUNTIME_DIR"]["detail"]
    finally:
        drop_subid_ranges(USER)
        shutil.rmtree(base)


def test_command_output_and_status():
    r = subprocess.run([sys.executable, "-m", "dockyard", "rootless", "check"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, DOCKYARD_NO_AUTOSTART="1"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "running as root: run this as the user who will run Dockyard\n"
    names = [c.name for c in check_host()]
    lines = [ln for ln in r.stdout.splitlines() if not ln.lstrip().startswith("fix:")]
    assert [ln.split("  ")[0].rstrip() for ln in lines] == names
