"""`service` and `stack`: our CLI side by side with docker's, against a
reference dockerd that is a one-node swarm (in network and mount namespaces
of its own), and against Dockyard's daemon, which is in no swarm (its swarm
endpoints answer 503). Names, IDs and times are normalised before comparing;
where docker's CLI walks a Go map (stack deploy's networks and services) the
lines are compared sorted."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DOCKER_CLI, unmount_all

pytestmark = [pytest.mark.docker_cli, pytest.mark.dockerd]


class SwarmDockerd:
    """A dockerd in its own network and mount namespaces, made a one-node swarm
    manager on 127.0.0.1 (overlay and ingress networks stay in its namespace)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("dockerd")
        if exe is None or DOCKER_CLI is None:
            pytest.skip("dockerd and the docker CLI (Debian docker.io) are needed")
        b = self.base
        script = ("ip link set lo up && mount -t tmpfs tmpfs /run/netns && exec " + exe +
                  f" --data-root {b}/data --exec-root {b}/exec -H {self.host}"
                  f" --pidfile {b}/docker.pid --containerd-namespace dockyard-svc"
                  " --bridge none --iptables=false --ip6tables=false --storage-driver vfs")
        self.proc = subprocess.Popen(
            ["unshare", "-n", "-m", "--propagation", "private", "bash", "-c", script],
            stdout=open(b / "dockerd.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip("dockerd could not start here: "
                            + (b / "dockerd.log").read_text()[-500:])
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.skip("dockerd did not answer in 60 s")
        r = self.docker("swarm", "init", "--advertise-addr", "127.0.0.1", check=False)
        if r.returncode != 0:
            pytest.skip(f"swarm init failed here: {r.stderr.decode()}")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
        env.update(DOCKER_HOST=self.host, DOCKYARD_HOST=self.host, DOCKYARD_NO_AUTOSTART="1",
                   DOCKER_CONFIG=str(self.base / "docker-config"),
                   DOCKYARD_CONFIG=str(self.base / "dockyard-config"))
        return env

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([DOCKER_CLI, *args], env=self.env(), capture_output=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {args} failed: {r.stderr.decode()}")
        return r

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.docker("swarm", "leave", "--force", check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # what dockerd started (containerd, shims) goes with it; kill any left by pid
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.base).encode() in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        unmount_all(self.base)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory, busybox_tar):
    d = SwarmDockerd(tmp_path_factory.mktemp("swarmref"))
    try:
        d.start()
        d.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        d.stop()


def _env_for(host: str, base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    env.update(DOCKER_HOST=host, DOCKYARD_HOST=host, DOCKYARD_NO_AUTOSTART="1",
               DOCKER_CONFIG=str(base / "docker-config"),
               DOCKYARD_CONFIG=str(base / "dockyard-config"))
    return env


def ours(eng, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Our CLI; where it names itself, docker's CLI names itself."""
    r = subprocess.run([sys.executable, "-m", "dockyard", *args],
                       env=_env_for(eng.host, eng.base), capture_output=True, timeout=120,
                       cwd=cwd)
    for a, b in ((b"See 'dockyard ", b"See 'docker "), (b'"dockyard ', b'"docker '),
                 (b"Usage:  dockyard ", b"Usage:  docker ")):
        r.stderr = r.stderr.replace(a, b)
    return r


def theirs(eng, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER_CLI, *args], env=_env_for(eng.host, eng.base),
                          capture_output=True, timeout=120, cwd=cwd)


def result(r: subprocess.CompletedProcess, subs: dict[str, str] | None = None
           ) -> tuple[int, str, str]:
    out, err = r.stdout.decode(), r.stderr.decode()
    for a, b in (subs or {}).items():
        out, err = out.replace(a, b), err.replace(a, b)
    return r.returncode, out, err


def pair(eng, t_args: list[str], o_args: list[str], cwd: tuple[Path | None, Path | None]
         = (None, None)) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """docker's CLI and ours at the same time (each on objects of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        t = ex.submit(theirs, eng, *t_args, cwd=cwd[0])
        o = ex.submit(ours, eng, *o_args, cwd=cwd[1])
        return t.result(), o.result()


def same(eng, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Both CLIs on the same state print the same; returns docker's result."""
    t, o = pair(eng, list(args), list(args), (cwd, cwd))
    assert result(o) == result(t), args
    return result(t)


_TIMES = [(re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"), "TIME"),
          (re.compile(r"(Running|Pending|Preparing|Starting|Assigned|Accepted|Ready|New|"
                      r"Allocated|Shutdown|Complete|Failed|Rejected) [\w ]+ ago"), r"\1 AGO"),
          (re.compile(r'"Index": \d+'), '"Index": N'), (re.compile(r"10\.0\.\d+\.\d+"), "IP")]


def norm(text: str, names: dict[str, str], ids: list[str] = ()) -> str:
    for i in sorted(ids, key=len, reverse=True):
        text = text.replace(i, "ID").replace(i[:12], "ID")
    for rx, rep in _TIMES:
        text = rx.sub(rep, text)
    for a, b in names.items():
        text = text.replace(a, b)
    return text


def columns(text: str) -> str:
    """A table whose cells were normalised: its column padding no longer matters."""
    return "\n".join(re.sub(r" {2,}", "  ", line).rstrip() for line in text.splitlines())


def service_id(eng, name: str) -> str:
    return eng.docker("service", "inspect", "-f", "{{.ID}}", name).stdout.decode().strip()


def inspect_norm(eng, name: str, subs: dict[str, str]) -> str:
    """A service's inspect JSON with its IDs, times and versions normalised."""
    text = eng.docker("service", "inspect", name).stdout.decode()
    # docker's CLI builds Env from a Go map on --env-add: its order is random
    data = json.loads(text)
    for svc in data:
        for spec in (svc.get("Spec"), svc.get("PreviousSpec")):
            cs = ((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
            if cs.get("Env"):
                cs["Env"] = sorted(cs["Env"])
    text = json.dumps(data, indent=4)
    text = re.sub(r'"(ID|NetworkID|SecretID|ConfigID|Target)": "[a-z0-9]{25}"', r'"\1": "X"',
                  text)
    return norm(text, subs)


def dedup(text: str) -> str:
    """Progress lines repeat as often as the display polls: one of each run,
    and of the counts of running tasks only the first and the last."""
    out: list[str] = []
    for line in text.splitlines():
        m = re.fullmatch(r"overall progress: (\d+) out of (\d+) tasks", line)
        if m and 0 < int(m[1]) < int(m[2]):
            continue
        if not out or out[-1] != line:
            out.append(line)
    return "\n".join(out)


# --- service create, inspect, ls ----------------------------------------------------------

SPEC_FLAGS = [
    "-d", "--replicas", "0", "-e", "A=1", "-e", "B=2", "--label", "l1=v1", "--label", "l2",
    "--container-label", "c1=x", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
    "--mount", "type=volume,source=vol1,target=/v,volume-label=a=b,readonly",
    "--constraint", "node.role==manager", "--restart-condition", "on-failure",
    "--restart-max-attempts", "3", "--limit-cpu", "0.5", "--limit-memory", "64m",
    "--reserve-cpu", "0.25", "--reserve-memory", "32m", "--update-parallelism", "2",
    "--update-delay", "1s", "--rollback-monitor", "2s", "--rollback-order", "start-first",
    "--entrypoint", "/bin/sh -x", "-w", "/tmp", "-u", "root", "--hostname", "hh",
    "--health-cmd", "true", "--health-interval", "5s", "--health-retries", "2",
    "--stop-grace-period", "3s", "--cap-add", "net_admin", "--cap-drop", "ALL",
    "--sysctl", "net.core.somaxconn=100", "--dns", "1.1.1.1", "--dns-search", "example.com",
    "--host", "foo:1.2.3.4", "--log-driver", "json-file", "--log-opt", "max-size=1m",
    "--no-resolve-image", "--init", "--ulimit", "nofile=100:200",
    "--placement-pref", "spread=node.labels.zone", "--stop-signal", "SIGUSR1",
    "--endpoint-mode", "dnsrr", "--read-only", "-t", "--group", "wheel",
    # one of each: docker's CLI orders several by walking a Go map
    "--secret", "source=sec1,target=/etc/s2,uid=5,mode=0400",
    "--config", "src=cfg1,target=/c1",
]


def test_create_detached_and_inspect(swarm, tmp_path):
    """The spec our `service create` sends is the one docker's CLI sends;
    `inspect` (raw, --format, --pretty) and `ls` print as docker's."""
    (tmp_path / "data").write_text("x\n")
    swarm.docker("secret", "create", "sec1", str(tmp_path / "data"))
    swarm.docker("config", "create", "cfg1", str(tmp_path / "data"))
    t, o = pair(swarm, ["service", "create", "--name", "sc-d", *SPEC_FLAGS, "busybox", "-c",
                        "sleep 300"],
                ["service", "create", "--name", "sc-o", *SPEC_FLAGS, "busybox", "-c",
                 "sleep 300"])
    assert t.returncode == o.returncode == 0, (t.stderr, o.stderr)
    assert o.stdout.decode().strip() == service_id(swarm, "sc-o")
    assert o.stderr == t.stderr == b""
    subs = {"sc-d": "NAME", "sc-o": "NAME"}
    assert inspect_norm(swarm, "sc-o", subs) == inspect_norm(swarm, "sc-d", subs)
    for args in (["--pretty"], ["-f", "{{.Spec.Name}} {{json .Spec.Labels}}"], []):
        same(swarm, "service", "inspect", *args, "sc-d", "sc-o")
    # published ports (ingress, kept apart) and the PORTS column
    t, o = pair(swarm, *[["service", "create", "-d", "--replicas", "0", "--name", name,
                          "--no-resolve-image", "-p", f"{base}:80", "-p", f"{base + 1}:81",
                          "-p", f"published={base + 10},target=90,protocol=udp", "-p", "8000",
                          "busybox", "true"] for name, base in (("sp-d", 18080),
                                                                ("sp-o", 18180))])
    assert t.returncode == o.returncode == 0, o.stderr
    # the published port given to `-p 8000` is the next free one: either may have 30000
    assert inspect_norm(swarm, "sp-o", {"sp-o": "N", "181": "180", "30001": "30000"}) == \
        inspect_norm(swarm, "sp-d", {"sp-d": "N", "30001": "30000"})
    for args in (["ls"], ["ls", "-q"], ["ls", "--format", "{{.Name}}|{{.Mode}}|{{.Replicas}}|"
                                                        "{{.Image}}|{{.Ports}}"],
                 ["ls", "--filter", "name=sp-"], ["ls", "-f", "mode=global"],
                 ["ls", "--format", "table {{.ID}}\t{{.Ports}}", "-f", "name=sp"],
                 ["ls", "--filter", "nokey"],
                 ["inspect", "--pretty", "sp-d", "sp-o"], ["inspect", "sc-d", "nosuch"],
                 ["inspect", "--pretty", "sc-d", "nosuch"], ["inspect", "nosuch"],
                 ["inspect", "--pretty", "-f", "x", "sc-d"]):
        same(swarm, "service", *args)


def test_create_modes_and_errors(swarm):
    """Modes, the REPLICAS column of jobs and global services, and the errors
    docker's CLI reports before and after asking the daemon."""
    for mode, extra in (("global", []), ("replicated-job", ["--replicas", "0"]),
                        ("global-job", [])):
        t, o = pair(swarm, *[["service", "create", "-d", "--mode", mode, *extra, "--name",
                              f"m-{mode}-{suffix}", "--no-resolve-image", "--constraint",
                              "node.role==nobody", "busybox", "true"] for suffix in "do"])
        assert t.returncode == o.returncode == 0, o.stderr
        assert inspect_norm(swarm, f"m-{mode}-o", {f"m-{mode}-o": "N"}) == \
            inspect_norm(swarm, f"m-{mode}-d", {f"m-{mode}-d": "N"})
    same(swarm, "service", "ls", "--filter", "name=m-")
    for args in (
            [], ["--foo"], ["--replicas", "x", "busybox"], ["--mode", "bogus", "busybox"],
            ["--mode", "global", "--replicas", "2", "busybox"],
            ["--mode", "replicated-job", "--update-delay", "1s", "busybox"],
            ["--mount", "type=bind,src=/x", "busybox"], ["-p", "1.2.3.4:80:80", "busybox"],
            ["--limit-cpu", "abc", "busybox"], ["--no-healthcheck", "--health-cmd", "x",
                                                "busybox"],
            ["--secret", "nosuchsecret", "busybox"], ["--network", "nosuchnet", "busybox"],
            ["--name", "sc-d", "-d", "--no-resolve-image", "busybox"],
            ["--credential-spec", "x", "busybox"]):
        same(swarm, "service", "create", *args)
    for args in (["ps", "nosuch", "m-global-d"], ["scale", "foo"],
                 ["scale", "nosuch=1", "m-global-d=1", "x=y"], ["update", "nosuch"],
                 ["logs", "nosuch"], ["ls", "extra"], ["ls", "--format", "{{.Nope}}"]):
        same(swarm, "service", *args)


# --- progress, ps, logs -------------------------------------------------------------------

def test_create_progress_ps_logs(swarm):
    """Without -d both CLIs show the service converging the same way (lines
    repeated by polling counted once); then ps and logs of its task."""
    cmd = ["--replicas", "2", "--update-monitor", "1s", "--stop-grace-period", "100ms",
           "busybox", "sh", "-c",
           "echo hello; echo oops >&2; sleep 300"]
    t, o = pair(swarm, ["service", "create", "--name", "pg-d", *cmd],
                ["service", "create", "--name", "pg-o", *cmd])
    ids = [service_id(swarm, "pg-d"), service_id(swarm, "pg-o")]
    assert t.returncode == o.returncode == 0
    assert o.stderr == t.stderr
    assert b"could not be accessed on a registry" in o.stderr
    assert dedup(norm(o.stdout.decode(), {}, ids)) == dedup(norm(t.stdout.decode(), {}, ids))
    assert "verify: Service converged" in o.stdout.decode()
    # -q waits silently after the ID
    t, o = pair(swarm, ["service", "update", "-q", "--env-add", "X=1", "pg-d"],
                ["service", "update", "-q", "--env-add", "X=1", "pg-o"])
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, b"pg-o\n", t.stderr)
    assert t.stdout == b"pg-d\n"
    deadline = time.monotonic() + 30
    while b"hello" not in swarm.docker("service", "logs", "pg-d").stdout or \
            b"hello" not in swarm.docker("service", "logs", "pg-o").stdout:
        assert time.monotonic() < deadline, "no logs"
        time.sleep(0.3)
    for args in (["ps", "pg-d", "pg-o"], ["ps", "-q", "pg-d"],
                 ["ps", "--no-trunc", "-f", "node=self", "pg-o"],
                 ["ps", "--format", "{{.Name}} {{.Image}} {{.DesiredState}}", "pg-o"],
                 ["logs", "pg-d"], ["logs", "--raw", "pg-o"],
                 ["logs", "--no-trunc", "-t", "--details", "pg-o"],
                 ["logs", "--no-task-ids", "--tail", "1", "pg-d"]):
        t, o = pair(swarm, ["service", *args], ["service", *args])
        assert o.returncode == t.returncode == 0, (args, o.stderr)
        if args[0] == "logs":  # tasks write in any order
            assert sorted(o.stdout.splitlines()) == sorted(t.stdout.splitlines()), args
            assert sorted(o.stderr.splitlines()) == sorted(t.stderr.splitlines()), args
        else:
            assert columns(norm(o.stdout.decode(), {})) == \
                columns(norm(t.stdout.decode(), {})), args
    # a task's own logs
    task = swarm.docker("service", "ps", "-q", "--no-trunc", "pg-d").stdout.split()[0].decode()
    same(swarm, "service", "logs", task)


# --- update, scale, rollback, rm -----------------------------------------------------------

UPDATE_ADD = ["-d", "--env-add", "C=3", "--label-add", "x=y", "--container-label-add", "k=v",
              "--mount-add", "type=tmpfs,target=/u", "--constraint-add", "node.role!=worker",
              "--limit-cpu", "1", "--force", "--update-order", "start-first",
              "--restart-delay", "2s", "--host-add", "a:1.1.1.1", "--dns-add", "8.8.8.8",
              "--dns-search-add", "ex.org", "--group-add", "wheel", "--args", "sleep 100",
              "--image", "busybox:latest", "--no-resolve-image", "--replicas", "0",
              "--publish-add", "published=7070,target=70,mode=host", "--cap-add", "SYS_TIME",
              "--health-cmd", "true", "--rollback-parallelism", "3", "--sysctl-add", "a.b=1",
              "--ulimit-add", "nproc=10:20", "--placement-pref-add", "spread=x"]
UPDATE_RM = ["-d", "--env-rm", "C", "--label-rm", "x", "--container-label-rm", "k",
             "--mount-rm", "/u", "--constraint-rm", "node.role!=worker", "--host-rm", "a",
             "--dns-rm", "8.8.8.8", "--group-rm", "wheel", "--publish-rm", "70",
             "--cap-drop", "SYS_TIME", "--no-healthcheck", "--sysctl-rm", "a.b",
             "--ulimit-rm", "nproc", "--placement-pref-rm", "spread=x", "--entrypoint", "sh"]


def test_update_scale_rollback_rm(swarm):
    for n in ("up-d", "up-o"):
        swarm.docker("service", "create", "-d", "--name", n, "--replicas", "0", "-e", "A=1",
                     "--no-resolve-image", "busybox", "sleep", "300")
    subs = {"up-d": "N", "up-o": "N"}
    for flags in (UPDATE_ADD, UPDATE_RM):
        t, o = pair(swarm, ["service", "update", *flags, "up-d"],
                    ["service", "update", *flags, "up-o"])
        assert result(o, subs) == result(t, subs)
        assert inspect_norm(swarm, "up-o", subs) == inspect_norm(swarm, "up-d", subs)
    for args in (["--rollback", "--env-add", "x=1"], ["--replicas", "x"],
                 ["--mount-add", "type=tmpfs"], ["--publish-add", "8080:80:80"]):
        t, o = pair(swarm, ["service", "update", *args, "up-d"],
                    ["service", "update", *args, "up-o"])
        assert result(o, subs) == result(t, subs), args
    t, o = pair(swarm, ["service", "scale", "-d", "up-d=0", "up-d=x", "nosuch=1"],
                ["service", "scale", "-d", "up-o=0", "up-o=x", "nosuch=1"])
    assert result(o, subs) == result(t, subs)
    for args in (["rollback", "-d"], ["update", "--rollback", "-d"]):
        t, o = pair(swarm, ["service", *args, "up-d"], ["service", *args, "up-o"])
        assert result(o, subs) == result(t, subs), args
        assert inspect_norm(swarm, "up-o", subs) == inspect_norm(swarm, "up-d", subs)
    t, o = pair(swarm, ["service", "rm", "up-d", "nosuch"], ["service", "rm", "up-o", "nosuch"])
    assert result(o, subs) == result(t, subs)


# --- stack ------------------------------------------------------------------------------------

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: sleep 300
    build: .
    container_name: ignored
    environment:
      - A=1
      - HOME
      - ONLY_NAME
    labels: {l: v}
    ports:
      - "{port}:80"
      - target: 90
        published: {uport}
        protocol: udp
    volumes:
      - data:/data
      - vext:/ext:ro
      - type: tmpfs
        target: /tmp2
    networks:
      front:
        aliases: [w]
    secrets:
      - extsec
      - source: s1
        target: other
        mode: 0400
    configs: [c1]
    healthcheck:
      test: "true"
      interval: 10s
      retries: 3
    deploy:
      replicas: 0
      labels: [dl=1]
      resources:
        limits: {cpus: "0.5", memory: 64M}
        reservations: {memory: 16M}
      restart_policy: {condition: on-failure, max_attempts: 2}
      update_config: {parallelism: 2, delay: 1s}
      placement:
        constraints: [node.role == manager]
    stop_grace_period: 5s
    extra_hosts: ["h:1.2.3.4"]
    ulimits: {nofile: {soft: 100, hard: 200}}
  job:
    image: ${IMAGE_FROM_ENV:-busybox:latest}
    entrypoint: ["sh", "-c"]
    command: ["sleep 300 $$HOME"]
    deploy:
      mode: global
      placement:
        constraints: [node.role == nobody]
networks:
  front:
    driver: overlay
    labels: {nn: x}
    attachable: true
volumes:
  data:
    labels: {v: yy}
  vext:
    external: true
secrets:
  s1:
    file: ./s.txt
  extsec:
    external: true
configs:
  c1:
    file: ./c.txt
"""

PRUNED = """\
version: "3.8"
services:
  job:
    image: busybox:latest
    command: ["sleep", "200"]
    deploy:
      mode: global
      placement:
        constraints: [node.role == nobody]
"""


def _stack_dir(tmp_path: Path, name: str, port: int) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "s.txt").write_text("secret\n")
    (d / "c.txt").write_text("config\n")
    (d / "stack.yml").write_text(COMPOSE.replace("{port}", str(port))
                                 .replace("{uport}", str(port + 1)))
    (d / "pruned.yml").write_text(PRUNED)
    return d


def _sorted_result(r: subprocess.CompletedProcess, subs: dict[str, str]
                   ) -> tuple[int, list[str], list[str]]:
    code, out, err = result(r, subs)
    return code, sorted(out.splitlines()), sorted(err.splitlines())


def test_stack_deploy_ls_ps_rm(swarm, tmp_path):
    dd, od = _stack_dir(tmp_path, "d", 28080), _stack_dir(tmp_path, "o", 28180)
    swarm.docker("secret", "create", "extsec", str(dd / "s.txt"))
    subs = {"stkd": "NS", "stko": "NS", "28180": "28080", "28181": "28081"}
    t, o = pair(swarm, ["stack", "deploy", "-c", "stack.yml", "--resolve-image", "never", "stkd"],
                ["stack", "deploy", "-c", "stack.yml", "--resolve-image", "never", "stko"],
                (dd, od))
    assert _sorted_result(o, subs) == _sorted_result(t, subs)
    assert t.returncode == 0
    for svc in ("web", "job"):
        assert inspect_norm(swarm, f"stko_{svc}", subs) == inspect_norm(swarm, f"stkd_{svc}", subs)
    for ns in ("stkd", "stko"):
        labels = swarm.docker("network", "inspect", "-f", "{{json .Labels}} {{.Attachable}}",
                              f"{ns}_front").stdout.decode()
        assert labels.replace(ns, "NS") == '{"com.docker.stack.namespace":"NS","nn":"x"} true\n'
    same(swarm, "stack", "ls")
    same(swarm, "stack", "ls", "--format", "{{.Name}}: {{.Services}}")
    for args in (["services"], ["services", "-q"], ["services", "--format", "{{.Name}}"],
                 ["services", "-f", "name=stkd_web"], ["ps"], ["ps", "-q"],
                 ["ps", "--no-trunc", "--format", "{{.Name}}"]):
        for ns in ("stkd", "stko"):
            same(swarm, "stack", *args, ns)
    # deploying again updates; --prune removes what the file no longer has
    t, o = pair(swarm, ["stack", "deploy", "--prune", "-c", "pruned.yml", "stkd"],
                ["stack", "deploy", "--prune", "-c", "pruned.yml", "stko"], (dd, od))
    ids = [service_id(swarm, "stkd_job"), service_id(swarm, "stko_job")]
    assert _sorted_result(o, {**subs, ids[1]: "ID", ids[0]: "ID"}) == \
        _sorted_result(t, {**subs, ids[1]: "ID", ids[0]: "ID"})
    assert inspect_norm(swarm, "stko_job", subs) == inspect_norm(swarm, "stkd_job", subs)
    t, o = pair(swarm, ["stack", "rm", "stkd", "nosuchstack"],
                ["stack", "rm", "stko", "nosuchstack"])
    assert _sorted_result(o, subs) == _sorted_result(t, subs)


def test_stack_errors(swarm, tmp_path):
    files = {
        "nov.yml": "services:\n  web:\n    image: busybox\n",
        "v2.yml": 'version: "2"\nservices:\n  web:\n    image: busybox\n',
        "bad.yml": 'version: "3.8"\nservices:\n  web:\n    image: busybox\n    foo: 1\n',
        "fb.yml": 'version: "3.8"\nservices:\n  web:\n    image: busybox\n    volumes_from: [x]\n'
                  "    mem_limit: 1g\n",
        "key.yml": 'version: "3.8"\nservices:\n  web:\n    image: busybox\n    labels: {n: x}\n',
        "interp.yml": 'version: "3.8"\nservices:\n  web:\n    image: "${"\n',
        "yaml.yml": "version: [\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for args in (["deploy", "st1"], ["deploy", "-c", "nosuch.yml", "st1"],
                 *[["deploy", "-c", f, "st1"] for f in files if f != "yaml.yml"],
                 ["deploy", "-c", "nov.yml", "--resolve-image", "sometimes", "st1"],
                 ["deploy", "-c", "nov.yml", "''"], ["ps", "nosuchstack"],
                 ["services", "nosuchstack"]):
        same(swarm, "stack", *args, cwd=tmp_path)
    o = ours(swarm, "stack", "deploy", "-c", "yaml.yml", "st1", cwd=tmp_path)
    assert o.returncode == 1 and o.stderr.startswith(b"yaml: ")


# --- Dockyard's daemon: in no swarm ------------------------------------------------------

def test_against_dockyard_not_in_a_swarm(daemon, tmp_path):
    """Against a daemon in no swarm our CLI prints what docker's CLI prints."""
    (tmp_path / "stack.yml").write_text('version: "3.8"\nservices:\n  web:\n'
                                        "    image: busybox\n")
    for args in (["service", "ls"], ["service", "ps", "x"], ["service", "inspect", "x"],
                 ["service", "inspect", "--pretty", "x"],
                 ["service", "create", "-d", "--no-resolve-image", "--name", "x", "busybox"],
                 ["service", "update", "--env-add", "A=1", "x"], ["service", "rm", "x", "y"],
                 ["service", "scale", "x=2"], ["service", "logs", "x"], ["stack", "ls"],
                 ["stack", "ps", "x"], ["stack", "rm", "x"],
                 ["stack", "deploy", "-c", "stack.yml", "x"]):
        same(daemon, *args, cwd=tmp_path)
