"""Host devices in containers, through the docker CLI against a test daemon,
as dockerd 20.10 gives them: `--device` (a node, a renamed node with fewer
cgroup permissions, a directory of nodes), `--device-cgroup-rule`, dockerd's
errors for a path that is not a device and for a bad rule (pinned from a real
dockerd), and `--privileged` seeing the host's devices. On this host the
device cgroup is the v1 controller; the pure v2 (eBPF) side is exercised by
tests/test_cgroup_v2_vm_inner.py."""

from __future__ import annotations

import os
import stat

import pytest

from dockyard.cli.client import APIError

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")

# /dev/fuse (10:229) is outside Docker's default rules: opening it needs a rule.


def run(daemon, *args: str, check: bool = True):
    return daemon.docker("run", "--rm", *args, check=check)


def test_device_node_and_renamed_read_only(daemon, bb, no_leftover_containers):
    out = run(daemon, "--device", "/dev/fuse", "--device", "/dev/null:/dev/mynull", bb, "sh",
              "-c", 'stat -c "%n %F %t:%T %a %u:%g" /dev/fuse /dev/mynull; : > /dev/fuse && '
              "echo fuse-open").stdout.decode()
    st = os.stat("/dev/fuse")
    assert f"/dev/fuse character special file a:e5 {st.st_mode & 0o777:o} " \
           f"{st.st_uid}:{st.st_gid}" in out
    assert "/dev/mynull character special file 1:3 666 0:0" in out
    assert "fuse-open" in out
    # `:r`: reading is let through, writing refused by the cgroup
    out = run(daemon, "--device", "/dev/fuse:/dev/myfuse:r", bb, "sh", "-c",
              "ls /dev/fuse 2>&1; (: < /dev/myfuse) && echo read-ok; "
              "(: > /dev/myfuse) 2>&1; true").stdout.decode()
    assert "No such file or directory" in out  # only the renamed node
    assert "read-ok" in out
    assert "Operation not permitted" in out


def test_no_node_made_in_a_bound_host_dev(daemon, bb, no_leftover_containers):
    # As runc: with the host's /dev bound in, nothing is made there (it would be the host's)
    out = run(daemon, "-v", "/dev:/dev", "--device", "/dev/null:/dev/dockyard-test-null", bb,
              "sh", "-c", "ls /dev/dockyard-test-null 2>&1; true").stdout.decode()
    assert "No such file or directory" in out
    assert not os.path.exists("/dev/dockyard-test-null")


def test_device_directory(daemon, bb, tmp_path, no_leftover_containers):
    d = tmp_path / "devdir"
    (d / "sub").mkdir(parents=True)
    os.mknod(d / "sub" / "fuse", 0o640 | 0o020000, os.makedev(10, 229))
    os.mknod(d / "null", 0o666 | 0o020000, os.makedev(1, 3))
    (d / "plain").write_text("x")
    out = run(daemon, "--device", f"{d}:/dev/dd:rw", bb, "sh", "-c",
              'find /dev/dd | sort; stat -c "%n %t:%T %a" /dev/dd/sub/fuse; '
              "(: > /dev/dd/sub/fuse) && echo w-ok").stdout.decode()
    assert out.split("\n")[:4] == ["/dev/dd", "/dev/dd/null", "/dev/dd/sub", "/dev/dd/sub/fuse"]
    assert "/dev/dd/sub/fuse a:e5 640" in out
    assert "w-ok" in out


def test_device_cgroup_rule(daemon, bb, no_leftover_containers):
    script = "mknod /dev/f c 10 229 && (: > /dev/f) 2>&1 && echo open-ok; true"
    assert "open-ok" in run(daemon, "--device-cgroup-rule", "c 10:229 rwm", bb, "sh", "-c",
                            script).stdout.decode()
    out = run(daemon, bb, "sh", "-c", script).stdout.decode()
    assert "Operation not permitted" in out and "open-ok" not in out
    # dockyard's own CLI: the same flag, and the docker CLI's check of it
    assert "open-ok" in daemon.cli("run", "--rm", "--device-cgroup-rule", "c 10:229 rw", bb,
                                   "sh", "-c", script).stdout.decode()
    r = daemon.cli("run", "--rm", "--device-cgroup-rule", "c 10:229", bb, "true", check=False)
    assert r.returncode == 125
    assert "invalid argument \"c 10:229\" for \"--device-cgroup-rule\" flag: invalid device " \
        "cgroup format 'c 10:229'" in r.stderr.decode()


def test_not_a_device_is_dockerds_start_error(daemon, bb, no_leftover_containers):
    r = run(daemon, "--device", "/etc/hostname", bb, "true", check=False)
    assert r.returncode == 125
    assert 'error gathering device information while adding custom device "/etc/hostname": ' \
           "not a device node" in r.stderr.decode()
    r = run(daemon, "--device", "/nonexistent-dev", bb, "true", check=False)
    assert 'adding custom device "/nonexistent-dev": no such file or directory' \
           in r.stderr.decode()


def test_bad_cgroup_rule_fails_the_start(daemon, bb, no_leftover_containers):
    # The docker CLI checks the format itself; dockerd's own check is at start (500).
    cl = daemon.client()
    cid = cl.post_json("/containers/create", None, {
        "Image": bb, "Cmd": ["true"],
        "HostConfig": {"DeviceCgroupRules": ["x 1:2 rwm"],
                       "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/f",
                                    "CgroupPermissions": "r"}]}})["Id"]
    hc = cl.get_json(f"/containers/{cid}/json")["HostConfig"]
    assert hc["Devices"] == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/f",
                              "CgroupPermissions": "r"}]
    assert hc["DeviceCgroupRules"] == ["x 1:2 rwm"]
    with pytest.raises(APIError) as e:
        cl.post_json(f"/containers/{cid}/start")
    assert e.value.status == 500
    assert e.value.message == "invalid device cgroup rule format: 'x 1:2 rwm'"
    st = cl.get_json(f"/containers/{cid}/json")["State"]
    assert (st["Status"], st["ExitCode"], st["Error"]) == ("created", 128, e.value.message)


def test_privileged_sees_host_devices(daemon, bb, no_leftover_containers):
    out = run(daemon, "--privileged", bb, "sh", "-c",
              'ls /dev; stat -c "%n %t:%T" /dev/fuse; (: > /dev/fuse) && echo fuse-open; '
              "readlink /dev/ptmx").stdout.decode().split("\n")
    assert "/dev/fuse a:e5" in out and "fuse-open" in out
    modes = {n: os.lstat(f"/dev/{n}").st_mode for n in os.listdir("/dev") if n != "console"}
    host = {n for n, m in modes.items() if stat.S_ISCHR(m) or stat.S_ISBLK(m)}
    assert host - set(out) <= {"ptmx"}, host - set(out)
    assert "pts/ptmx" in out  # still the container's own devpts
