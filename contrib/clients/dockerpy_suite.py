"""docker-py's own integration suite as a yardstick: run its single-host
test files against a reference dockerd and against Dockyard on this machine,
each engine in a network namespace of its own with its default bridge, and
list every test that passes on dockerd but not on Dockyard.

The suite isn't vendored (and PyPI's sdist has no tests): give a docker-py
git checkout, which is exported at the pinned commit.

    python3 contrib/clients/dockerpy_suite.py --repo ~/src/docker-py
    python3 contrib/clients/dockerpy_suite.py --repo R --engines dockyard -k exec

Images come from busybox-static, tagged as the names the suite uses. Results
go to bench/results/dockerpy.json (per test: outcome per engine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

PINNED = "afc6d1ee"  # docker/docker-py, 2026 (7.1.0 + fixes)
FILES = ["api_client_test.py", "api_container_test.py", "api_exec_test.py",
         "api_image_test.py", "api_network_test.py", "api_volume_test.py",
         "api_build_test.py", "api_healthcheck_test.py", "client_test.py", "errors_test.py",
         "models_containers_test.py", "models_images_test.py", "models_networks_test.py",
         "models_resources_test.py", "models_volumes_test.py", "regression_test.py"]
TAGS = ["alpine:3.10", "alpine:latest", "busybox:latest", "busybox:buildroot-2014.02"]
ROOT = Path(__file__).resolve().parents[2]


def busybox_tar(work: Path) -> Path:
    """A rootfs tar of busybox-static with its applet links, /etc/passwd and /tmp."""
    bb = shutil.which("busybox") or "/bin/busybox"
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy(bb, root / "bin/busybox")
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox" and not (root / "bin" / a).exists():
            (root / "bin" / a).symlink_to("busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    out = work / "busybox.tar"
    with tarfile.open(out, "w") as t:
        t.add(root, ".")
    return out


def start_engine(kind: str, base: Path) -> subprocess.Popen:
    sock = base / "engine.sock"
    if kind == "dockyard":
        cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{sock}",
               "-g", str(base / "root"), "-p", str(base / "pid"), "--exec-root", str(base / "exec")]
    else:
        cmd = ["dockerd", "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
               "-H", f"unix://{sock}", "--pidfile", str(base / "pid"),
               "--containerd-namespace", f"dypy-{os.getpid()}"]
    # Its own network (bridge, rules) and mount namespace: nothing reaches the host's.
    inner = "ip link set lo up && mount -t tmpfs tmpfs /run/netns 2>/dev/null; exec " + \
        " ".join(f"'{c}'" for c in cmd)
    p = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private", "sh", "-c", inner],
                         stdout=open(base / "engine.log", "wb"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    for _ in range(600):
        if sock.exists() and subprocess.run(["docker", "version"], env=env,
                                            capture_output=True).returncode == 0:
            return p
        time.sleep(0.1)
    raise SystemExit(f"{kind} did not start: see {base / 'engine.log'}")


def stop_engine(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def outcomes(xml: Path) -> dict[str, str]:
    res = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                kind = "failed"
            elif child.tag == "skipped":
                kind = "skipped"
        res[name] = kind
    return res


def run_suite(kind: str, suite: Path, work: Path, files: list[str], k: str | None) -> dict[str, str]:
    base = Path(tempfile.mkdtemp(prefix=f"dypy-{kind}-", dir="/var/tmp"))
    p = start_engine(kind, base)
    env = {**os.environ, "DOCKER_HOST": f"unix://{base / 'engine.sock'}"}
    env.pop("DOCKER_TLS_VERIFY", None)
    try:
        tar = busybox_tar(work / kind)
        for tag in TAGS:
            subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(tar), tag], env=env,
                           check=True, capture_output=True)
        xml = work / f"{kind}.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "120",
               f"--junitxml={xml}", *[f"tests/integration/{f}" for f in files]]
        if k:
            cmd += ["-k", k]
        subprocess.run(cmd, cwd=suite, env=env)
        return outcomes(xml)
    finally:
        # What the suite left: containers (their supervisors outlive a
        # daemon, Dockyard's shims as containerd's), networks, volumes.
        ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], env=env, capture_output=True)
        for what in ("network", "volume"):
            subprocess.run(["docker", what, "prune", "-f"], env=env, capture_output=True)
        stop_engine(p)
        subprocess.run(["pkill", "-9", "-f", f"dockyard-shim.*{base}"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="a docker-py git checkout")
    ap.add_argument("--commit", default=PINNED)
    ap.add_argument("--engines", default="dockerd,dockyard")
    ap.add_argument("--files", default=",".join(FILES))
    ap.add_argument("-k", default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dypy-"))
    suite = work / "docker-py"
    suite.mkdir()
    archive = subprocess.run(["git", "-C", a.repo, "archive", a.commit, "tests"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(suite)], input=archive, check=True)
    results = {e: run_suite(e, suite, work, a.files.split(","), a.k) for e in a.engines.split(",")}
    names = sorted(set().union(*results.values()))
    table = {n: {e: results[e].get(n, "missing") for e in results} for n in names}
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dockerpy.json").write_text(json.dumps(table, indent=1))
    for e, r in results.items():
        print(f"{e}: {sum(v == 'passed' for v in r.values())} passed of {len(r)}")
    if "dockerd" in results and "dockyard" in results:
        gap = [n for n, v in table.items() if v["dockerd"] == "passed" and v["dockyard"] != "passed"]
        print(f"passing on dockerd but not on Dockyard: {len(gap)}")
        for n in gap:
            print("  ", n)
        extra = [n for n, v in table.items() if v["dockyard"] == "passed" and v["dockerd"] != "passed"]
        print(f"passing on Dockyard only: {len(extra)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
