"""The swarm-mode command groups (`swarm`, `node`, `secret`, `config`) side by
side with docker's CLI (28.x when installed): against a reference dockerd put
in a swarm (in a network namespace of its own, so its swarm ports are
private), and against Dockyard's daemon, which is in no swarm and answers as
such a dockerd does. IDs, join tokens, unlock keys and ages are normalised."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import DOCKER_CLI, unmount_all

DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else DOCKER_CLI
pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")

ADDR = ["--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"]


def _env(host: str, base: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DOCKER_HOST=host, DOCKYARD_HOST=host, DOCKYARD_NO_AUTOSTART="1",
               DOCKER_CONFIG=str(base / "docker-config"),
               DOCKYARD_CONFIG=str(base / "dockyard-config"))
    return env


def _ours_names(err: bytes) -> bytes:
    """Where our CLI names itself, docker's names itself."""
    err = re.sub(rb"(^|\n)dockyard: ", rb"\1docker: ", err)
    for a, b in ((b"'dockyard ", b"'docker "), (b"Usage:  dockyard ", b"Usage:  docker ")):
        err = err.replace(a, b)
    return err


def run(which: str, host: str, base: Path, *args: str, input: bytes = b""
        ) -> tuple[int, bytes, bytes]:
    cmd = [DOCKER] if which == "docker" else [sys.executable, "-m", "dockyard"]
    r = subprocess.run([*cmd, *args], env=_env(host, base), input=input, capture_output=True,
                       timeout=60)
    return r.returncode, r.stdout, _ours_names(r.stderr) if which == "ours" else r.stderr


def both(host: str, base: Path, *args: str, input: bytes = b""
         ) -> tuple[tuple[int, bytes, bytes], tuple[int, bytes, bytes]]:
    """docker's and our results for the same command, run at the same time."""
    with ThreadPoolExecutor(2) as pool:
        d = pool.submit(run, "docker", host, base, *args, input=input)
        o = pool.submit(run, "ours", host, base, *args, input=input)
        return d.result(), o.result()


AGO = re.compile(rb"(less than a second|about a minute|about an hour|\d+ (seconds?|minutes|hours))"
                 rb" ago", re.I)


def norm(r: tuple[int, bytes, bytes]) -> tuple[int, bytes, bytes]:
    """IDs, tokens, keys and ages out; the columns ages move are joined."""
    def n(b: bytes) -> bytes:
        b = re.sub(rb"\b[a-z0-9]{25}\b", b"<id>", b)
        b = re.sub(rb"SWMTKN-1-[a-z0-9-]+", b"<token>", b)
        b = re.sub(rb"SWMKEY-1-[A-Za-z0-9+/=]+", b"<key>", b)
        b = AGO.sub(b"<ago>", b).replace(b"c=,a=b", b"a=b,c=")  # Go's map order is random
        return re.sub(rb"(?<=\S) {2,}(?=\S)", b"  ", b)
    return r[0], n(r[1]), n(r[2])


# --- the reference swarm ------------------------------------------------------------

class SwarmRef:
    """A dockerd in network and mount namespaces of its own, in a swarm."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.host = f"unix://{base}/docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("dockerd")
        if exe is None or shutil.which("unshare") is None:
            pytest.skip("dockerd or unshare is not installed")
        b = self.base
        script = ("ip link set lo up; mount -t tmpfs tmpfs /run/netns 2>/dev/null; exec "
                  f"{exe} --data-root {b}/data --exec-root {b}/exec -H {self.host} "
                  f"--pidfile {b}/docker.pid --containerd-namespace dockyard-swarmref "
                  "--bridge none --iptables=false --ip6tables=false --storage-driver vfs")
        self.proc = subprocess.Popen(
            ["unshare", "-n", "-m", "--propagation", "private", "bash", "-c", script],
            stdout=open(b / "dockerd.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip("dockerd could not start: " + (b / "dockerd.log").read_text()[-500:])
            if (b / "docker.sock").exists() and self.docker("version")[0] == 0:
                return
            time.sleep(0.2)
        pytest.skip("dockerd did not answer in 60 s")

    def docker(self, *args: str, input: bytes = b"") -> tuple[int, bytes, bytes]:
        return run("docker", self.host, self.base, *args, input=input)

    def ours(self, *args: str, input: bytes = b"") -> tuple[int, bytes, bytes]:
        return run("ours", self.host, self.base, *args, input=input)

    def both(self, *args: str, input: bytes = b""):
        return both(self.host, self.base, *args, input=input)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.docker("swarm", "leave", "--force")
            left = self.docker("ps", "-aq")[1].split()
            if left:
                self.docker("rm", "-f", *(c.decode() for c in left))
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # its containerd, started by dockerd under our exec root
        out = subprocess.run(["pgrep", "-f", f"containerd.*{self.base}"], capture_output=True,
                             text=True).stdout.split()
        for pid in out:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        unmount_all(self.base)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    d = SwarmRef(tmp_path_factory.mktemp("swarmref"))
    try:
        d.start()
        r = d.docker("swarm", "init", *ADDR)
        assert r[0] == 0, r
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def node_id(ref) -> str:
    return ref.docker("node", "ls", "-q")[1].decode().strip()


# --- against the swarm ---------------------------------------------------------------

def test_init_leave_and_autolock(ref):
    """init (with --autolock) and leave, ours then docker's, print the same."""
    left_o = ref.ours("swarm", "leave", "--force")
    assert left_o == (0, b"Node left the swarm.\n", b"")
    d, o = ref.both("swarm", "leave")
    assert o == d and d[0] == 1 and b"not part of a swarm" in d[2]
    args = ("swarm", "init", *ADDR, "--autolock", "--task-history-limit", "3",
            "--default-addr-pool", "10.20.0.0/16,10.30.1.0/24", "--default-addr-pool-mask-length",
            "26", "--dispatcher-heartbeat", "7s", "--cert-expiry", "48h", "--availability", "drain")
    cluster = ("info", "-f", "{{json .Swarm.Cluster.Spec}} {{.Swarm.Cluster.DefaultAddrPool}} "
               "{{.Swarm.Cluster.SubnetSize}} {{.Swarm.NodeID}}")
    init_o = ref.ours(*args)
    spec_o = ref.docker(*cluster)
    assert ref.docker("swarm", "leave", "--force") == left_o
    init_d = ref.docker(*args)
    assert norm(init_o) == norm(init_d) and init_d[0] == 0
    spec_d = ref.docker(*cluster)
    assert norm(spec_o) == norm(spec_d) and b"[10.20.0.0/16 10.30.1.0/24] 26" in spec_d[1]
    assert b'"HeartbeatPeriod":7000000000' in spec_d[1]
    assert b"Swarm initialized: current node (" in init_d[1]
    assert b"    docker swarm join --token SWMTKN-1-" in init_d[1]
    for cmd in (["swarm", "unlock-key"], ["swarm", "unlock-key", "-q"], ["swarm", "unlock"],
                ["node", "ls", "--format", "{{.Availability}}"],
                ["swarm", "init"], ["swarm", "join", "127.0.0.1:2377"]):
        d, o = ref.both(*cmd)
        assert o == d, cmd
    assert ref.ours("swarm", "update", "--autolock=false") == (0, b"Swarm updated.\n", b"")
    d, o = ref.both("swarm", "unlock-key")
    assert o == d == (1, b"", b"no unlock key is set\n")
    d, o = ref.both("swarm", "unlock-key", "--rotate")
    assert o == d == (1, b"", b"cannot rotate because autolock is not turned on\n")
    # turning autolock on prints the key, as init did
    o = ref.ours("swarm", "update", "--autolock")
    ref.docker("swarm", "update", "--autolock=false")
    d = ref.docker("swarm", "update", "--autolock=true")
    assert norm(o) == norm(d) and b"<key>" in norm(d)[1]
    ref.docker("swarm", "update", "--autolock=false")
    me = ref.docker("node", "ls", "-q")[1].decode().strip()
    assert ref.docker("node", "update", "--availability", "active", me)[0] == 0


SIDE_BY_SIDE = [
    ["swarm", "join-token", "manager"], ["swarm", "join-token", "-q", "worker"],
    ["swarm", "join-token", "nobody"],
    ["swarm", "ca"], ["swarm", "ca", "--cert-expiry", "1h"],
    ["swarm", "update", "--dispatcher-heartbeat", "1x"],
    ["node", "ls"], ["node", "ls", "-q"], ["node", "ls", "--format", "{{json .}}"],
    ["node", "ls", "-f", "role=worker"],
    ["node", "inspect", "self"], ["node", "inspect", "--pretty", "self"],
    ["node", "inspect", "self", "nosuchnode", "-f", "{{.Spec.Role}} {{.Status.State}}"],
    ["node", "inspect", "--pretty", "nosuchnode", "self"],
    ["node", "inspect", "--format", "prettyx", "self"],
    ["node", "ps"], ["node", "ps", "nosuchnode", "self"],
    ["node", "rm", "nosuchnode"],
]


def test_swarm_side_by_side(ref):
    with ThreadPoolExecutor(2) as pool:
        for args, (d, o) in pool.map(lambda a: (a, ref.both(*a)), SIDE_BY_SIDE):
            assert o == d, args


def test_rotate_join_token(ref):
    o = ref.ours("swarm", "join-token", "--rotate", "manager")
    d = ref.docker("swarm", "join-token", "--rotate", "manager")
    assert norm(o) == norm(d) and d[0] == 0
    assert d[1].startswith(b"Successfully rotated manager join token.\n\nTo add a manager")
    o = ref.ours("swarm", "join-token", "--rotate", "-q", "worker")
    assert o[0] == 0 and o[1].startswith(b"SWMTKN-1-") and o[1] != d[1]


def test_node_update_promote_demote(ref, node_id):
    assert ref.ours("node", "update", "--label-add", "a=b", "--label-add", "c", node_id) == \
        (0, node_id.encode() + b"\n", b"")
    d, o = ref.both("node", "inspect", "-f", "{{json .Spec}}", node_id)
    assert o == d and b'"Labels":{"a":"b","c":""}' in d[1]
    assert ref.docker("node", "update", "--label-rm", "a", node_id) == \
        ref.ours("node", "update", "--label-rm", "c", node_id)
    for args in (["node", "update", "--label-rm", "zz", node_id],
                 ["node", "update", "--availability", "bogus", node_id],
                 ["node", "update", "--availability", "active", "self"],
                 ["node", "promote", node_id], ["node", "demote", node_id]):
        d, o = ref.both(*args)
        assert o == d, args


def test_node_ps_tasks(ref, busybox_tar):
    """A service whose task fails twice: the tasks on the node, the retry
    under the first, errors cut to 30 characters unless --no-trunc."""
    assert ref.docker("import", str(busybox_tar), "busybox:latest")[0] == 0
    r = ref.docker("service", "create", "--detach", "--name", "bad", "--restart-max-attempts",
                   "1", "--restart-delay", "100ms", "busybox:latest", "nosuchcommand")
    assert r[0] == 0, r
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = ref.docker("node", "ps", "--format", "{{.CurrentState}}")[1].split(b"\n")
        if len(states) == 3 and all(st.startswith(b"Failed") for st in states[:2]):
            break
        time.sleep(0.3)
    for args in (["node", "ps"], ["node", "ps", "--no-trunc", "--no-resolve", "self"],
                 ["node", "ps", "--format", "json"], ["node", "ps", "-q"]):
        d, o = ref.both(*args)
        assert norm(o) == norm(d), args
        if args == ["node", "ps"]:
            assert b"bad.1 " in d[1] and b" \\_ bad.1 " in d[1] and b'"starting container' in d[1]
    ref.docker("service", "rm", "bad")


def test_secrets(ref, tmp_path):
    f = tmp_path / "secret"
    f.write_bytes(b"s3cr3t")
    o = ref.ours("secret", "create", "-l", "a=b", "-l", "c", "s1", str(f))
    d = ref.docker("secret", "create", "--template-driver", "golang", "s2", "-", input=b"x\n")
    assert norm(o) == norm(d) == (0, b"<id>\n", b"")
    for args in (["secret", "ls"], ["secret", "ls", "-q", "-f", "name=s1"],
                 ["secret", "ls", "--format", '{{.Name}} {{.Labels}} {{.Label "a"}}'],
                 ["secret", "ls", "--format", "json"],
                 ["secret", "inspect", "nosuch", "s1", "s2"],
                 ["secret", "inspect", "--pretty", "s1", "s2"],
                 ["secret", "inspect", "-f", "{{.Spec.Name}}", "s2", "nosuch"],
                 ["secret", "inspect", "--pretty", "nosuch", "s1"],
                 ["secret", "create", "s1", str(f)],
                 ["secret", "create", "s3", str(tmp_path / "nosuch")],
                 ["secret", "create", "-d", "foo", "s3", str(f)]):
        d, o = ref.both(*args)
        assert norm(o) == norm(d), args
    d = ref.docker("secret", "rm", "s1", "nosuch")
    assert ref.ours("secret", "rm", "s2", "nosuch") == (1, b"s2\n", d[2]) and d[1] == b"s1\n"


def test_configs(ref, tmp_path):
    f = tmp_path / "config"
    f.write_bytes(b"line1\nline2\n")
    o = ref.ours("config", "create", "-l", "x=y", "c1", str(f))
    d = ref.docker("config", "create", "c2", "-", input=b"hi <&>\n")
    assert norm(o) == norm(d) == (0, b"<id>\n", b"")
    for args in (["config", "ls"], ["config", "ls", "--format", "json"],
                 ["config", "inspect", "c1", "c2", "nosuch"],
                 ["config", "inspect", "--pretty", "c1", "c2"],
                 ["config", "inspect", "-f", "json", "c2"], ["config", "create", "c1", str(f)]):
        d, o = ref.both(*args)
        assert norm(o) == norm(d), args
    d = ref.docker("config", "rm", "c1", "nosuch")
    assert ref.ours("config", "rm", "c2", "nosuch") == (1, b"c2\n", d[2]) and d[1] == b"c1\n"


# --- against Dockyard's daemon (in no swarm) --------------------------------------------

NOT_IN_A_SWARM = [
    ["swarm", "init"], ["swarm", "join", "--token", "x", "127.0.0.1:2377"],
    ["swarm", "join-token", "worker"], ["swarm", "leave", "-f"], ["swarm", "unlock"],
    ["swarm", "unlock-key", "-q"], ["swarm", "update", "--autolock"],
    ["node", "ls"], ["node", "inspect", "self"], ["node", "ps"],
    ["node", "update", "--role", "worker", "x"], ["secret", "create", "s", "-"],
    ["secret", "rm", "x", "y"], ["config", "inspect", "--pretty", "x"],
    # bad values, refused before any request
    ["swarm", "init", "--availability", "bogus"], ["swarm", "init", "--cert-expiry", "abc"],
    ["swarm", "init", "--listen-addr", "a:b:c"], ["swarm", "init", "--external-ca", "foo"],
    ["node", "ls", "-f", "foo"], ["secret", "create", "-l", "=x", "s", "-"],
    ["config", "create", "c", "-"],
    # argument counts, as cobra checks them
    ["swarm", "join-token"], ["swarm", "leave", "x"], ["node", "promote"],
    ["secret", "create", "a", "b", "c"],
]


def test_not_in_a_swarm(daemon, tmp_path):
    """Our CLI against Dockyard's daemon prints what docker's CLI prints."""
    def pair(args: list[str]):
        stdin = b"" if args[:2] == ["config", "create"] else b"data"
        return args, both(daemon.host, tmp_path, *args, input=stdin)

    with ThreadPoolExecutor(2) as pool:
        for args, (d, o) in pool.map(pair, NOT_IN_A_SWARM):
            assert o == d, args
            assert d[0] != 0, args
