#!/usr/bin/env python3
"""Run critest (kubernetes-sigs/cri-tools) against Dockyard's CRI endpoint, on
this checkout. A tool run by hand: never part of the test suite or CI (critest
and crictl are other projects' builds and stay out of the repository).

    python3 tools/critest/run.py [--critest PATH] [--names real|prefix]
        [--timeout S] [--out DIR] [--quiet] [-- CRITEST-ARGS...]

    python3 tools/critest/run.py -- -ginkgo.focus='Image Manager'
    python3 tools/critest/run.py -- -ginkgo.skip='Streaming'
    python3 tools/critest/run.py --run '$CRICTL pull registry.k8s.io/e2e-test-images/busybox:1.29-2'

Everything runs in namespaces of its own (network, mount, IPC, PID; made with
unshare, tini as their PID 1): a docker-registry on that loopback serving the
test images made here from Debian's busybox-static (and two tiny static C
programs, nginx.c and nnp.c), a Dockyard daemon from this checkout with --cri
and a CNI bridge conflist, and critest itself (its networking, mount and IPC
specs act on "the host": here, those namespaces). When the run ends, or on
Ctrl-C, the PID namespace's end takes every process with it, and the mounts go
with the mount namespace; the data root and the containers' cgroups are then
removed. Logs and the JSON report stay in --out.

--names real (the default): the images keep the names critest asks for
(registry.k8s.io/e2e-test-images/..., gcr.io/k8s-staging-cri-tools/...); both
hosts resolve to the namespace's loopback (a private /etc/hosts) where the
registry listens on port 80 (the daemon is told they are insecure: plain HTTP).
--names prefix: critest's `-registry-prefix 127.0.0.1:PORT`, kept to show why
it is not the default. critest v1.32 pulls `<prefix>/<path>` with the tag
dropped (every image is asked for as :latest, so each is pushed under that tag
too), but then creates containers, and compares RepoTags and ImageStatus, with
the names it did not prefix: every spec that runs a container, and 7 of the 8
Image Manager specs, fail in that mode whatever the runtime does.

critest: --critest, else $CRITEST, else /tmp/lead-critest/critest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_CRITEST = "/tmp/lead-critest/critest"
DEFAULT_CRICTL = "/tmp/stream-go/crictl"
E2E = "e2e-test-images"
STAGING = "k8s-staging-cri-tools"
REAL_HOSTS = {E2E: "registry.k8s.io", STAGING: "gcr.io"}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFLIST = {"cniVersion": "1.0.0", "name": "critest", "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}


# --- the test images ------------------------------------------------------------

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "www-data:x:33:33:www-data:/var/www:/bin/false\n"
          "nobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"
# Applets critest runs that Debian's busybox-static lacks (the e2e busybox image
# has them): small shell stand-ins with the same output for critest's uses.
PGREP = """#!/bin/sh
# pgrep NAME: the pids of the processes whose name contains NAME.
status=1
for d in /proc/[0-9]*; do
    read -r comm < "$d/comm" 2>/dev/null || continue
    case "$comm" in *"$1"*) echo "${d#/proc/}"; status=0 ;; esac
done
exit $status
"""
IPCS = """#!/bin/sh
# ipcs -m: the IPC namespace's shared memory segments (key, shmid, ...).
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
    printf "0x%08x %-10s %-10s %-10s %-10s %s\\n" "$key" "$shmid" "$uid" "$perms" "$size" \\
        "$nattch"
done
"""
HTTPD_FOREGROUND = """#!/bin/sh
# The stand-in for Apache httpd: busybox's httpd, in the foreground, on :80.
echo "httpd (busybox) serving /usr/local/apache2/htdocs on :80"
exec httpd -f -p 80 -h /usr/local/apache2/htdocs
"""


def compile_c(name: str, out: Path) -> bytes:
    """A static build of tools/critest/<name>.c: the images need no libc."""
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(out), str(HERE / f"{name}.c")],
                   check=True)
    return out.read_bytes()


def busybox_layer() -> bytes:
    """bin/busybox and its applets as hard links, as in the busybox image (with
    symlinks, masking /bin/ls would mask busybox itself), and tmp/."""
    import io
    import tarfile

    import registries as reg

    applets = subprocess.run([reg.BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    exe = Path(reg.BUSYBOX).read_bytes()

    def entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, link, reg.EPOCH
        ti.uname = ti.gname = "root"
        return ti

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            t.addfile(entry(d, tarfile.DIRTYPE, mode))
        t.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755, len(exe)), io.BytesIO(exe))
        for a in sorted(set(applets) - {"busybox"}):
            t.addfile(entry(f"bin/{a}", tarfile.LNKTYPE, 0o755, link="bin/busybox"))
    return buf.getvalue()


def images(work: Path) -> Iterator[tuple[str, list[str], list[bytes], dict[str, Any]]]:
    """(repository path, tags, layer tars, image config) for every image
    critest v1.32 pulls, made as cri-tools' images/*/Dockerfile describe them
    (busybox plus a file, a USER, a web server, a setuid program)."""
    import registries as reg

    base = [busybox_layer(),
            reg.files_layer({"etc/passwd": PASSWD, "etc/group": GROUP,
                             "usr/bin/pgrep": PGREP, "usr/bin/ipcs": IPCS},
                            dirs=["root", "var/run", "var/www"],
                            modes={"usr/bin/pgrep": 0o755, "usr/bin/ipcs": 0o755})]

    def config(cmd: list[str], user: str = "") -> dict[str, Any]:
        c: dict[str, Any] = {"Env": [PATH_ENV], "Cmd": cmd}
        if user:
            c["User"] = user
        return {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                "config": c}

    nginx = reg.files_layer({"usr/sbin/nginx": compile_c("nginx", work / "nginx")},
                            modes={"usr/sbin/nginx": 0o755})
    nnp = reg.files_layer({"usr/local/bin/nnp": compile_c("nnp", work / "nnp")},
                          modes={"usr/local/bin/nnp": 0o4755})
    httpd = reg.files_layer({"usr/local/bin/httpd-foreground": HTTPD_FOREGROUND,
                             "usr/local/apache2/htdocs/index.html":
                                 "<html><body><h1>It works!</h1></body></html>\n"},
                            modes={"usr/local/bin/httpd-foreground": 0o755})
    sh = config(["sh"])
    yield f"{E2E}/busybox", ["1.29-2"], base, sh
    yield f"{E2E}/nginx", ["1.14-2"], [*base, nginx], config(["nginx", "-g", "daemon off;"])
    yield f"{E2E}/httpd", ["2.4.39-4"], [*base, httpd], config(["httpd-foreground"])
    yield f"{E2E}/nonewprivs", ["1.3"], [*base, nnp], config(["/usr/local/bin/nnp"])
    yield (f"{STAGING}/hostnet-nginx-amd64", ["latest"], [*base, nginx],
           config(["nginx", "-g", "daemon off;", "-p", "12003"]))

    def marked(name: str) -> list[bytes]:  # ADD ${TEST} ${TEST}: an empty file at /NAME
        return [*base, reg.files_layer({name: b""})]

    for name in ("test-image-1", "test-image-2", "test-image-3", "test-image-latest",
                 "test-image-digest"):
        yield f"{STAGING}/{name}", ["latest"], marked(name), sh
    yield f"{STAGING}/test-image-tags", ["1", "2", "3"], marked("same-image"), sh
    for tag in ("test", "all"):
        yield f"{STAGING}/test-image-tag", [tag], marked(tag), sh
    for name, user in (("uid", "1002"), ("username", "www-data"), ("uid-group", "1003:1004"),
                       ("username-group", "www-data:1004")):
        yield f"{STAGING}/test-image-user-{name}", ["latest"], base, config(["sh"], user)
    predefined = reg.files_layer({
        "etc/passwd": PASSWD + "default-user:x:1000:1000::/home/default-user:/bin/sh\n",
        "etc/group": GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"},
        dirs=["home/default-user"])
    yield (f"{STAGING}/test-image-predefined-group", ["latest"], [*base, predefined],
           config(["sh"], "1000"))


# --- the run inside the namespaces ------------------------------------------------


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def start_registry(base: Path, addr: str) -> Any:
    import secrets

    import registries as reg

    base.mkdir(parents=True)
    (base / "storage").mkdir()
    config = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(base / "storage")},
                          "delete": {"enabled": True}},
              "http": {"addr": addr, "secret": secrets.token_hex(16)}}
    (base / "config.yml").write_text(json.dumps(config))  # YAML reads JSON
    return reg.Registry(base, base / "storage", addr).start()


class Node:
    """The Dockyard daemon serving the CRI, as a kubelet's node would run it."""

    def __init__(self, base: Path, insecure: list[str]) -> None:
        self.base = base
        self.cri_sock = base / "cri.sock"
        self.log = base / "daemon.log"
        conf = base / "net.d"
        conf.mkdir()
        conflist = json.loads(json.dumps(CONFLIST))
        conflist["plugins"][0]["ipam"]["dataDir"] = str(base / "ipam")
        (conf / "10-critest.conflist").write_text(json.dumps(conflist))
        self.cmd = [sys.executable, "-m", "dockyard", "daemon", "-H",
                    f"unix://{base / 'dockyard.sock'}", "-g", str(base / "root"),
                    "--exec-root", str(base / "exec"), "-p", str(base / "dockyard.pid"),
                    "-s", "overlay", "-D", "--bridge", "none", "--iptables=false",
                    "--cri", f"unix://{self.cri_sock}", "--cni-conf-dir", str(conf),
                    *[f"--insecure-registry={r}" for r in insecure]]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        import grpc

        pb, svc = load_proto()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the daemon exited:\n" + self.log.read_text()[-3000:])
            if self.cri_sock.exists():
                try:
                    with grpc.insecure_channel(f"unix://{self.cri_sock}") as ch:
                        svc.RuntimeServiceStub(ch).Version(pb.VersionRequest(), timeout=5)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("the daemon's CRI socket did not answer within 60 s")

    def remove_pods(self) -> None:
        """What critest left (an interrupted run): removed through the CRI itself,
        so that the daemon's records are clean too."""
        import grpc

        pb, svc = load_proto()
        try:
            with grpc.insecure_channel(f"unix://{self.cri_sock}") as ch:
                rt = svc.RuntimeServiceStub(ch)
                for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id),
                                        timeout=60)
                for c in rt.ListContainers(pb.ListContainersRequest(), timeout=30).containers:
                    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=c.id), timeout=60)
        except grpc.RpcError as e:
            print(f"critest harness: cleaning up through the CRI failed: {e}", file=sys.stderr)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load_proto() -> tuple[Any, Any]:
    from dockyard.cri import proto

    return proto.load()


def run_critest(args: argparse.Namespace, base: Path, node: Node, prefix: str) -> int:
    report = Path(args.out) / "report.json"
    cmd = [args.critest, "-runtime-endpoint", f"unix://{node.cri_sock}",
           "-image-endpoint", f"unix://{node.cri_sock}", "-ginkgo.v", "-ginkgo.no-color",
           f"-ginkgo.json-report={report}", f"-ginkgo.timeout={args.timeout}s"]
    if prefix:
        cmd += ["-registry-prefix", prefix]
    cmd += args.critest_args
    (base / "tmp").mkdir()
    (base / "critest").mkdir()
    env = dict(os.environ, TMPDIR=str(base / "tmp"))  # critest's log directories
    print("critest harness: " + " ".join(cmd), flush=True)
    with open(Path(args.out) / "critest.log", "wb") as log:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=base / "critest", env=env,
                             start_new_session=True)
        try:
            assert p.stdout is not None
            for line in p.stdout:
                log.write(line)
                if not args.quiet:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
            return p.wait()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def run_command(args: argparse.Namespace, base: Path, node: Node) -> int:
    """--run: a shell command in the namespaces instead of critest (crictl
    scenarios, debugging), with crictl's endpoint variables set."""
    sock = f"unix://{node.cri_sock}"
    env = dict(os.environ, CONTAINER_RUNTIME_ENDPOINT=sock, IMAGE_SERVICE_ENDPOINT=sock,
               CRI_SOCK=str(node.cri_sock), CRICTL=args.crictl, TMPDIR=str(base))
    return subprocess.run(["sh", "-c", args.run], env=env, cwd=base).returncode


def inner(args: argparse.Namespace) -> int:
    """PID 1's child in the new namespaces: registry, images, daemon, critest."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "python")]  # registries.py, dockyard
    base = Path(args.base)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    registry = node = None
    rc = 1
    try:
        if args.names == "real":
            hosts = base / "hosts"
            hosts.write_text(Path("/etc/hosts").read_text() +
                             "\n127.0.0.1 " + " ".join(sorted(set(REAL_HOSTS.values()))) + "\n")
            # A private mount namespace: the host's /etc/hosts is untouched.
            subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
            registry = start_registry(base / "registry", "127.0.0.1:80")
            prefix, insecure = "", sorted(set(REAL_HOSTS.values()))
        else:
            import registries as reg

            registry = start_registry(base / "registry", f"127.0.0.1:{reg.free_port()}")
            prefix, insecure = registry.host, [registry.host]
        import registries as reg

        for repo, tags, layers, cfg in images(base):
            if prefix:  # critest v1.32's prefixing drops the tag: every name asks for latest
                tags = [*tags, "latest"]
            for tag in dict.fromkeys(tags):
                reg.push_image(registry, repo, tag, layers, cfg, auth=False)
        print(f"critest harness: test images pushed to {registry.host} "
              f"({args.names} names)", flush=True)
        (base / "node").mkdir()
        node = Node(base / "node", insecure)
        node.start()
        if args.run:
            rc = run_command(args, base, node)
        else:
            rc = run_critest(args, base, node, prefix)
    except Interrupted as e:
        print(f"critest harness: interrupted ({e}), cleaning up", file=sys.stderr)
        rc = 130
    finally:
        # Whatever comes now must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            if node.proc is not None and node.proc.poll() is None:
                node.remove_pods()
            node.stop()
            shutil.copy(node.log, Path(args.out) / "daemon.log")
        if registry is not None:
            registry.stop()
    return rc


# --- the host side ------------------------------------------------------------------


def cgroups() -> set[Path]:
    root = Path("/sys/fs/cgroup")
    return {p for p in root.rglob("*") if p.is_dir()} if root.is_dir() else set()


def ids_under(root: Path) -> set[str]:
    """Container and pod ids (64 hex digits) the daemon recorded."""
    found: set[str] = set()
    for d in ("containers", "pods", "cri"):
        if (root / d).is_dir():
            for p in (root / d).rglob("*"):
                if re.fullmatch(r"[0-9a-f]{64}", p.name):
                    found.add(p.name)
    return found


def remove_cgroups(before: set[Path], ids: set[str]) -> list[Path]:
    """The cgroups this run made for its containers and pods: their processes
    died with the PID namespace; empty cgroups are left to remove. Cgroups
    made meanwhile by anything else on the machine are left alone (named in
    the return value if they match nothing of ours but appeared)."""
    left = []
    for p in sorted(cgroups() - before, key=lambda p: len(p.parts), reverse=True):
        if any(i in str(p) for i in ids) or any(i[:12] in p.name for i in ids):
            for _ in range(50):
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                left.append(p)
    return left


def summary(out: Path) -> None:
    """Passed/failed/skipped from ginkgo's JSON report, and each failure's first line."""
    report = out / "report.json"
    if not report.exists():
        print("critest harness: no report (critest did not get to write one)")
        return
    specs = [s for suite in json.loads(report.read_text()) for s in suite.get("SpecReports") or []
             if s.get("LeafNodeType") == "It"]
    by: dict[str, list[dict[str, Any]]] = {}
    for s in specs:
        by.setdefault(s["State"], []).append(s)

    def name(s: dict[str, Any]) -> str:
        return " ".join([*s.get("ContainerHierarchyTexts", []), s.get("LeafNodeText", "")])

    skipped = by.get("skipped", [])
    runtime_skips = [s for s in skipped if (s.get("Failure") or {}).get("Message")]
    failed = [s for st, ss in by.items() if st not in ("passed", "skipped", "pending") for s in ss]
    ran = len(by.get("passed", [])) + len(failed)
    print("\n=== critest summary ===")
    print(f"passed {len(by.get('passed', []))} of {ran} run; failed {len(failed)}; "
          f"skipped {len(skipped)} ({len(runtime_skips)} by the spec itself, "
          f"{len(skipped) - len(runtime_skips)} not selected); {len(specs)} specs in all")
    for s in runtime_skips:
        msg = (s["Failure"]["Message"].strip().splitlines() or [""])[0]
        print(f"  skipped: {name(s)}: {msg}")
    for s in failed:
        f = s.get("Failure") or {}
        lines = [x.strip() for x in (f.get("Message") or "").splitlines() if x.strip()]
        loc = f.get("Location") or {}
        where = f"{Path(loc.get('FileName', '?')).name}:{loc.get('LineNumber', '?')}"
        streaming = " [streaming]" if "Streaming" in name(s) else ""
        print(f"  FAILED{streaming} ({s['State']}): {name(s)}\n      {where}: "
              f"{' '.join(lines[:2])[:300]}")


def outer(args: argparse.Namespace, rest: list[str]) -> int:
    if not Path(args.critest).is_file():
        sys.exit(f"critest not found at {args.critest} (--critest or $CRITEST)")
    for tool in ("unshare", "tini", "gcc", "/usr/bin/docker-registry", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or f"/tmp/dockyard-critest-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="dockyard-critest-"))
    before = cgroups()
    cmd = ["unshare", "--net", "--mount", "--ipc", "--pid", "--fork", "--kill-child",
           "--mount-proc", "--propagation", "private", "tini", "--",
           sys.executable, str(Path(__file__).resolve()), "--inner", "--base", str(base),
           "--out", str(out), "--critest", args.critest, "--names", args.names,
           "--timeout", str(args.timeout), "--crictl", args.crictl,
           *(["--quiet"] if args.quiet else []), *(["--run", args.run] if args.run else []),
           "--", *rest]
    # unshare runs in a session of its own: Ctrl-C reaches only this process,
    # which passes it on as SIGTERM to tini (PID 1 inside), which passes it to
    # the run, which cleans up. If that does not end in time, killing unshare
    # kills tini (--kill-child), and the PID namespace's end kills the rest.
    p = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.monotonic() + args.timeout + 600

    def forward(signum: int, frame: Any) -> None:
        nonlocal deadline
        deadline = min(deadline, time.monotonic() + 120)
        try:
            for child in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
                os.kill(int(child), signal.SIGTERM)
        except (OSError, ValueError):
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (rc := p.poll()) is None:
            if time.monotonic() > deadline:
                p.kill()
                rc = p.wait()
                break
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        ids = ids_under(base / "node" / "root")
        left = remove_cgroups(before, ids)
        # The namespaces' mounts go away asynchronously after their last
        # process: an overlay's work directory can be busy for a moment.
        deadline = time.monotonic() + 30
        while base.exists() and time.monotonic() < deadline:
            shutil.rmtree(base, ignore_errors=True)
            if base.exists():
                time.sleep(0.5)
        if base.exists():
            print(f"critest harness: could not remove {base}", file=sys.stderr)
        if left:
            print(f"critest harness: cgroups left: {left}", file=sys.stderr)
    if not args.run:
        summary(out)
    print(f"logs: {out}/critest.log, {out}/daemon.log; report: {out}/report.json")
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--critest", default=os.environ.get("CRITEST", DEFAULT_CRITEST))
    ap.add_argument("--names", choices=("real", "prefix"), default="real",
                    help="images under the names critest asks for (default), or "
                    "critest's -registry-prefix")
    ap.add_argument("--timeout", type=int, default=3600, help="critest's own time limit, s")
    ap.add_argument("--out", help="where logs and report.json go (default a new "
                    "/tmp/dockyard-critest-<time>)")
    ap.add_argument("--quiet", action="store_true", help="don't echo critest's output")
    ap.add_argument("--run", metavar="CMD", help="run this shell command in the namespaces "
                    "instead of critest ($CRICTL, $CONTAINER_RUNTIME_ENDPOINT set)")
    ap.add_argument("--crictl", default=os.environ.get("CRICTL", DEFAULT_CRICTL))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    args = ap.parse_args(argv)
    args.critest = os.path.abspath(args.critest)
    args.critest_args = rest
    if args.inner:
        return inner(args)
    if os.geteuid() != 0:
        sys.exit("run as root: namespaces, mounts and cgroups")
    return outer(args, rest)


if __name__ == "__main__":
    sys.exit(main())
