"""Daemon options that shape containers: --default-ulimit and --exec-opt
native.cgroupdriver (systemd falls back to cgroupfs where systemd isn't init)."""

from __future__ import annotations

import os

from conftest import Daemon, assert_no_mounts_left


def test_default_ulimit_and_cgroup_driver(tmp_path, busybox_tar):
    d = Daemon(tmp_path, "vfs", ["--default-ulimit", "nofile=123:456",
                                 "--exec-opt", "native.cgroupdriver=systemd"])
    d.start()
    try:
        d.cli("import", str(busybox_tar), "busybox:latest")
        out = d.docker("run", "--rm", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
        assert out.stdout.split() == [b"123", b"456"]
        # a container's own --ulimit wins over the daemon's default
        out = d.docker("run", "--rm", "--ulimit", "nofile=77:88", "busybox", "sh", "-c",
                       "ulimit -n")
        assert out.stdout.strip() == b"77"
        info = d.docker("info", "--format", "{{.CgroupDriver}}").stdout.strip()
        assert info == b"cgroupfs"  # the systemd driver is not implemented: cgroupfs serves
        if not os.path.isdir("/run/systemd/system"):
            assert "systemd is not running here; using cgroupfs" in d.log.read_text()
    finally:
        d.stop()
        assert_no_mounts_left(tmp_path)
