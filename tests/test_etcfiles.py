"""`network.etcfiles.write`: the /etc files a start writes in place."""

from __future__ import annotations

import os

from dockyard.network import etcfiles


def test_write_new_same_longer_shorter(tmp_path):
    p = tmp_path / "hosts"
    etcfiles.write(p, "127.0.0.1\tlocalhost\n")
    assert p.read_text() == "127.0.0.1\tlocalhost\n"
    assert p.stat().st_mode & 0o7777 == 0o644
    ino, mtime = p.stat().st_ino, p.stat().st_mtime_ns
    etcfiles.write(p, "127.0.0.1\tlocalhost\n")  # the same text: left alone
    assert (p.stat().st_ino, p.stat().st_mtime_ns) == (ino, mtime)
    etcfiles.write(p, "127.0.0.1\tlocalhost\n10.0.0.2\tabc\n")  # longer
    assert p.read_text() == "127.0.0.1\tlocalhost\n10.0.0.2\tabc\n"
    etcfiles.write(p, "::1\tx\n")  # shorter: nothing of the old text left
    assert p.read_text() == "::1\tx\n"
    etcfiles.write(p, "")
    assert p.read_text() == "" and p.stat().st_ino == ino


def test_write_fixes_the_mode_and_never_follows_a_symlink(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("nameserver 10.0.0.1\n")
    os.chmod(p, 0o600)
    etcfiles.write(p, "nameserver 10.0.0.1\n")
    assert p.stat().st_mode & 0o7777 == 0o644
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    link = tmp_path / "hostname"
    link.symlink_to(target)
    try:
        etcfiles.write(link, "abc\n")
    except OSError:
        pass
    assert target.read_text() == "keep\n"
