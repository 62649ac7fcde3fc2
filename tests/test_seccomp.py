"""Custom seccomp profiles (`--security-opt seccomp=profile.json`, Docker's JSON
format) on real containers through a daemon, with the docker CLI (which sends
the profile's content) and Dockyard's CLI. The BPF compiler itself is unit
tested in rust/runtime/src/seccomp/profile.rs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from conftest import DOCKER_CLI

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")


def all_syscalls() -> list[str]:
    if not UNISTD.exists():
        pytest.skip(f"{UNISTD} (linux-libc-dev) is needed to list syscall names")
    return re.findall(r"#define __NR_(\w+) \d+", UNISTD.read_text())


@pytest.fixture(scope="module")
def image(daemon, busybox_tar):
    daemon.cli("import", str(busybox_tar), "seccomp-busybox:latest")
    yield "seccomp-busybox:latest"


@pytest.fixture
def profile(tmp_path):
    """Write a profile (dict or raw text) to a file; returns its path."""
    def write(p: dict | str) -> str:
        f = tmp_path / f"profile-{uuid.uuid4().hex[:8]}.json"
        f.write_text(p if isinstance(p, str) else json.dumps(p, indent=2))
        return str(f)
    return write


@pytest.fixture
def run(daemon, image):
    """Run a container with --rm through `docker` or `dockyard`; names are
    removed afterwards even if the run failed half-way."""
    names: list[str] = []

    def go(cli: str, secopt: str, *cmd: str, extra: tuple[str, ...] = ()):
        name = f"sc-{uuid.uuid4().hex[:10]}"
        names.append(name)
        f = daemon.docker if cli == "docker" else daemon.cli
        r = f("run", "--rm", "--name", name, "--security-opt", f"seccomp={secopt}", *extra,
              image, *cmd, check=False)
        return r.returncode, r.stdout.decode(), r.stderr.decode()
    yield go
    for n in names:
        daemon.cli("rm", "-f", n, check=False)


def allow_all_but(*denied: str, **top) -> dict:
    names = [n for n in all_syscalls() if n not in denied]
    return {"defaultAction": "SCMP_ACT_ERRNO", **top,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW", "args": []}]}


CLIS = ["dockyard", pytest.param("docker", marks=pytest.mark.skipif(
    DOCKER_CLI is None, reason="the docker CLI is not installed"))]


@pytest.mark.parametrize("cli", CLIS)
def test_default_errno_with_allow_list(run, profile, cli):
    p = profile(allow_all_but("mkdir", "mkdirat"))
    code, out, err = run(cli, p, "sh", "-c", "echo hello; mkdir /x; echo rc=$?; "
                                             "grep Seccomp: /proc/self/status")
    assert code == 0, err
    assert "hello" in out and "rc=1" in out and "Seccomp:\t2" in out
    assert "Operation not permitted" in out + err


@pytest.mark.parametrize("cli", CLIS)
def test_errno_ret(run, profile, cli):
    # defaultErrnoRet for what the list leaves out, errnoRet for a rule.
    p = allow_all_but("mkdir", "mkdirat", "rmdir", defaultErrnoRet=38)
    p["syscalls"].append({"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13})
    code, out, err = run(cli, profile(p), "sh", "-c", "mkdir /x; rmdir /tmp; echo done")
    assert code == 0, err
    assert "Function not implemented" in out + err
    assert "Permission denied" in out + err
    assert "done" in out


def test_arg_condition_blocks_inet_sockets(run, profile):
    p = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                       "args": [{"index": 0, "value": 2, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]}
    script = ("wget -q -O- http://127.0.0.1:1/; echo inet=$?; "
              "syslogd -n -O /tmp/log & sleep 0.5; logger unix-ok; sleep 0.3; cat /tmp/log; "
              "kill $!; ip -o link show lo | grep -c lo")
    code, out, err = run("dockyard", profile(p), "sh", "-c", script, extra=("--network", "none"))
    assert "inet=1" in out, (out, err)
    assert "socket: Operation not permitted" in out + err
    assert "unix-ok" in out, (out, err)  # AF_UNIX (1) is allowed
    assert out.strip().endswith("1"), out  # and so is AF_NETLINK (16)


def test_personality_arg_masked_and_gt(run, profile):
    # personality allowed only for arg0 == 0 (and the query 0xffffffff, which libcs issue).
    p = allow_all_but("personality")
    p["syscalls"] += [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xffffffff, "op": "SCMP_CMP_EQ"}]},
    ]
    code, out, err = run("dockyard", profile(p), "sh", "-c",
                         "linux32 true; echo l32=$?; linux64 true; echo l64=$?")
    assert "l32=1" in out or "l32=2" in out, (out, err)  # PER_LINUX32 (8) refused
    assert "l64=0" in out, (out, err)  # PER_LINUX (0) allowed


@pytest.mark.parametrize("cli", CLIS)
def test_kill_action(run, profile, cli):
    p = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    code, out, err = run(cli, profile(p), "mkdir", "/x")
    assert code == 159, (code, out, err)  # 128 + SIGSYS
    code, out, err = run(cli, profile(p), "echo", "fine")
    assert code == 0 and out == "fine\n", err


def test_kill_process_and_trace(run, profile):
    p = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"},
                      {"names": ["rmdir"], "action": "SCMP_ACT_TRACE"}]}
    code, _, err = run("dockyard", profile(p), "mkdir", "/x")
    assert code == 159, err
    # No tracer attached: the kernel fails the syscall with ENOSYS.
    code, out, err = run("dockyard", profile(p), "sh", "-c", "rmdir /tmp; echo rc=$?")
    assert "Function not implemented" in out + err and "rc=1" in out


def test_includes_caps_follow_the_final_capability_set(run, profile):
    # mkdir is only allowed with CAP_SYS_ADMIN (not in the default set).
    p = allow_all_but("mkdir", "mkdirat")
    p["syscalls"].append({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}})
    path = profile(p)
    code, out, _ = run("dockyard", path, "sh", "-c", "mkdir /x && echo made")
    assert "made" not in out
    code, out, err = run("dockyard", path, "sh", "-c", "mkdir /x && echo made",
                         extra=("--cap-add", "SYS_ADMIN"))
    assert code == 0 and "made" in out, err


def test_privileged_stays_unconfined(run, profile):
    p = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    code, out, err = run("dockyard", profile(p), "sh", "-c",
                         "mkdir /x && grep Seccomp: /proc/self/status",
                         extra=("--privileged",))
    assert code == 0 and "Seccomp:\t0" in out, err


@pytest.mark.parametrize("cli", CLIS)
def test_invalid_profiles(run, profile, cli):
    # Valid JSON the daemon refuses.
    bad = [({"defaultAction": "SCMP_ACT_NOPE"}, "invalid defaultAction"),
           ({"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
            "out of range"),
           ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
             "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "use either"),
           ([1, 2], "must be a JSON object")]
    for p, msg in bad:
        code, out, err = run(cli, profile(p), "true")
        assert code == 125, (p, code, err)
        assert "Error response from daemon: Decoding seccomp profile failed" in err, err
        assert msg in err, err
    # Not JSON at all: the client refuses it (as the docker CLI does).
    code, _, err = run(cli, profile("{nope"), "true")
    assert code == 125 and "compacting json for seccomp profile" in err, err
    code, _, err = run(cli, "/nonexistent/profile.json", "true")
    assert code == 125 and "opening seccomp profile" in err, err


def test_api_sends_content(daemon, image, profile):
    """The Engine API gets `seccomp=<json>` in HostConfig.SecurityOpt, like dockerd."""
    prof = json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO",
                                     "errnoRet": 38}, {"name": "mkdirat",
                                                       "action": "SCMP_ACT_ERRNO"}]})
    name = f"sc-{uuid.uuid4().hex[:10]}"
    try:
        daemon.cli("create", "--name", name, "--security-opt", f"seccomp={profile(prof)}",
                   image, "mkdir", "/x")
        info = json.loads(daemon.cli("inspect", name).stdout)[0]
        (opt,) = info["HostConfig"]["SecurityOpt"]
        assert opt.startswith("seccomp={") and json.loads(opt[len("seccomp="):]) == json.loads(prof)
        daemon.cli("start", name)
        r = daemon.cli("wait", name)
        assert r.stdout.decode().strip() == "1"
        logs = daemon.cli("logs", name)
        assert "Function not implemented" in (logs.stdout + logs.stderr).decode()
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_profile_resolution_in_python():
    """What spec.py hands the runtime: includes/excludes resolved against the
    final caps, archMap turned into architectures (an OCI `linux.seccomp` shape)."""
    from dockyard.containers import spec

    p = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "comment": "ignored",
         "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                     {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None}],
         "syscalls": [
             {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": None},
             {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
             {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
              "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
             {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
              "includes": {"arches": ["amd64", "x32"]}},
             {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
             {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
             {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
              "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    text = json.dumps(p)
    r = spec.seccomp_spec(text, ["CAP_CHOWN"])
    assert r["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert [s["names"][0] for s in r["syscalls"]] == ["read", "clone3", "arch_prctl", "ptrace",
                                                      "clone"]
    assert r["syscalls"][-1]["args"] == [{"index": 0, "value": 2114060288, "valueTwo": 0,
                                          "op": "SCMP_CMP_MASKED_EQ"}]
    admin = spec.seccomp_spec(text, ["SYS_ADMIN"])
    assert [s["names"][0] for s in admin["syscalls"]][:2] == ["read", "mount"]
    assert spec.seccomp_spec("unconfined", []) is None
    assert spec.seccomp_spec("builtin", []) == spec.seccomp_spec("", []) == "default"
