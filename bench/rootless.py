"""Rootless Dockyard side by side with Dockyard as root and rootless podman
(issue 18's goals: rootless within 10% of root, at least 5x faster than
rootless podman), in one run, as root (it makes a throwaway user):

    python3 bench/rootless.py [--runs N] [--only run|pull]

- `run --rm busybox true`, timed around the CLI as the user runs it
  (the installed `dockyard run ...`, beside the interpreter / `podman run ...`), by a driver that runs as
  that user (rootless) or root, so the per-call wrapper (setpriv, the mount
  trick that reaches an interpreter under /root) is not timed. Also through
  the API alone (create, start, wait, delete: no CLI start-up), where the
  daemons' own work differs. Dockyard rootless: full ID map (newuidmap),
  overlay with userxattr, `--network none`; Dockyard as root: overlay, `--bridge none`, so `--network none` too;
  podman 4.3 rootless, attached `run --rm` as a user types it: `--runtime runc` (crun fails on a
  hybrid cgroup host), cgroupfs (no systemd user session), `--network none`, overlay, busybox from
  `podman import`, and its runtime dir where a login session has it, /run/user/UID (made here,
  removed at the end), not under the bench's temporary dir: podman hands conmon an exit command,
  `podman --runroot $XDG_RUNTIME_DIR/containers ... container cleanup --rm ID`, and refuses an
  explicit `--runroot` over 50 characters (so the sockets under it fit a socket path); with a
  longer runtime dir that cleanup fails, the container is never marked exited, and every
  attached `run` waits out podman's 20 s conmon timeout. Podman's database keeps the runroot
  of its first command, so it must be short from the start.
- `pull` of a two-layer image (busybox and /usr/lib/python3/dist-packages,
  ~4000 files) from a local docker-registry on 127.0.0.1, rootless vs root,
  `rmi` (untimed) between runs.

Medians of N (default 15) with the spread (min-max), and ratios. Needs
podman and runc (`apt-get install -y --no-install-recommends podman runc`),
uidmap, docker-registry. Everything it made (user, subordinate ranges,
runtime dir, processes, files) is removed at the end. Results: stdout and
bench/results/rootless.json."""

from __future__ import annotations

import argparse
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from common import median, save

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("PYTHONPATH", str(REPO / "python"))
sys.path.insert(0, os.environ["PYTHONPATH"].split(":")[0])

os.environ.setdefault("DOCKYARD_TEST_ROOTLESS_USER", "dockyard-bench-rl")
os.environ.setdefault("DOCKYARD_TEST_ROOTLESS_START", "700000")

from conftest import Daemon, busybox_rootfs, drop_subid_ranges, make_tar  # noqa: E402
from registries import busybox_layer, gzip_layer, push_image, start_registry  # noqa: E402
import test_rootless as trl  # noqa: E402

USER, START, COUNT = trl.USER, trl.START, trl.COUNT

#: Times CMD (argv, JSON) N times after one warm-up, as whoever runs it; a
#: command may be "api": create/start/wait/delete through the socket.
DRIVER = r'''
import json, os, subprocess, sys, time
cmd, n, host = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def api():
    from dockyard.cli.client import Client
    c = Client(host)
    cid = c.post_json("/containers/create", None, {"Image": "busybox", "Cmd": ["true"],
                      "HostConfig": {"NetworkMode": "none"}})["Id"]
    c.post_json(f"/containers/{cid}/start")
    c.post_json(f"/containers/{cid}/wait")
    c.request("DELETE", f"/containers/{cid}").close()
def once():
    if cmd == ["api"]:
        api()
    else:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
once()
out = []
for _ in range(n):
    t = time.perf_counter(); once(); out.append(time.perf_counter() - t)
print(json.dumps(out))
'''


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def stats(xs: list[float]) -> dict[str, float]:
    return {"median_ms": median(xs) * 1000, "min_ms": min(xs) * 1000, "max_ms": max(xs) * 1000,
            "n": len(xs)}


def row(name: str, s: dict[str, float], base: dict[str, float] | None = None,
        base_name: str = "") -> None:
    ratio = f"  {s['median_ms'] / base['median_ms']:5.2f}x {base_name}" if base else ""
    print(f"  {name:46} {s['median_ms']:8.1f} ms  ({s['min_ms']:.1f}-{s['max_ms']:.1f}){ratio}")


def drive_root(cmd: list[str], n: int, env: dict[str, str], host: str = "") -> list[float]:
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cmd), str(n), host], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def drive_user(u: "trl.RootlessUser", cmd: list[str], n: int, env: dict[str, str] | None = None,
               host: str = "") -> list[float]:
    r = subprocess.run(u.argv(sys.executable, "-c", DRIVER, json.dumps(cmd), str(n), host),
                       env=env or u.env, capture_output=True, text=True, cwd="/")
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def make_user(base: Path) -> pwd.struct_passwd:
    subprocess.run(["userdel", USER], capture_output=True)
    drop_subid_ranges(USER)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a") as f:
            f.write(f"{USER}:{START}:{COUNT}\n")
    return pwd.getpwnam(USER)


def python_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add("/usr/lib/python3/dist-packages", arcname="usr/lib/python3/dist-packages",
              filter=lambda ti: (setattr(ti, "mtime", 1_700_000_000) or ti))
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--only", choices=["run", "pull"])
    args = ap.parse_args()
    n = args.runs
    if os.geteuid() != 0:
        sys.exit("run as root: it makes a throwaway user")
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-rl-", dir="/var/tmp"))
    base.chmod(0o755)
    pw = make_user(base)
    # podman's runtime dir: a login session's, short (see the docstring)
    user_run = Path("/run/user") / str(pw.pw_uid)
    made: list[Path] = []
    results: dict[str, dict] = {}
    root_d = rl = reg = None
    try:
        bb_tar = make_tar(busybox_rootfs(base / "bb-rootfs"), base / "bb.tar")
        bb_tar.chmod(0o644)
        rl = trl.RootlessUser(pw, base, "rl")
        rl.start()
        rl.cli("import", "-c", 'CMD ["sh"]', str(bb_tar), "busybox:latest")
        root_d = Daemon(base / "root", "overlay")
        (base / "root").mkdir()
        root_d.start()
        root_d.cli("import", "-c", 'CMD ["sh"]', str(bb_tar), "busybox:latest")
        # the command as pip installs it (its fast launcher), else the module
        script = os.path.join(os.path.dirname(sys.executable), "dockyard")
        dy = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "dockyard"]
        if args.only in (None, "run"):
            # podman: its own storage under the user's home, runtime dir /run/user/UID
            pm = trl.RootlessUser(pw, base, "pm")
            if not user_run.parent.exists():
                user_run.parent.mkdir(0o755)
                made.append(user_run.parent)
            user_run.mkdir(0o700)  # a stale one (FileExistsError) is not taken over
            made.insert(0, user_run)
            os.chown(user_run, pw.pw_uid, pw.pw_gid)
            pm.run = user_run
            pm.env["XDG_RUNTIME_DIR"] = str(user_run)
            conf = pm.home / ".config" / "containers"
            conf.mkdir(parents=True)
            (conf / "storage.conf").write_text('[storage]\ndriver = "overlay"\n')
            (conf / "containers.conf").write_text(
                '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n')
            for p in (pm.home / ".config", conf, conf / "storage.conf",
                      conf / "containers.conf"):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            podman = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
            r = subprocess.run(pm.argv(*podman, "import", str(bb_tar), "bb"), env=pm.env,
                               capture_output=True, text=True, cwd="/")
            if r.returncode != 0:
                raise RuntimeError(f"podman import: {r.stderr}")
            log("timing run --rm busybox true ...")
            # interleaved rounds: drift (other load on the host) hits all alike
            got: dict[str, list[float]] = {k: [] for k in (
                "root", "rootless", "podman", "root-api", "rootless-api")}
            per = max(1, n // 3)
            for _ in range(3):
                got["root"] += drive_root([*dy, "run", "--rm", "--network", "none", "busybox", "true"], per,
                                          root_d.env())
                got["rootless"] += drive_user(rl, [*dy, "run", "--rm", "--network", "none", "busybox", "true"], per)
                got["podman"] += drive_user(pm, [*podman, "run", "--rm", "--network", "none",
                                                 "bb", "true"], per)
                got["root-api"] += drive_root(["api"], per, root_d.env(), root_d.host)
                got["rootless-api"] += drive_user(rl, ["api"], per, host=f"unix://{rl.sock}")
            # every attached run --rm removed its container (conmon's cleanup ran, no stall)
            left = subprocess.run(pm.argv(*podman, "ps", "-aq"), env=pm.env, capture_output=True,
                                  text=True, cwd="/", check=True).stdout.split()
            if left:
                raise RuntimeError(f"podman left {len(left)} containers: its cleanup failed")
            res = {k: stats(v) for k, v in got.items()}
            results["run"] = res
            print("\nrun --rm busybox true (CLI as the user runs it; median, min-max)")
            row("dockyard as root", res["root"])
            row("dockyard rootless", res["rootless"], res["root"], "of root")
            row("podman 4.3 rootless", res["podman"], res["rootless"], "of dockyard rootless")
            print("create+start+wait+delete through the API (no CLI start-up)")
            row("dockyard as root", res["root-api"])
            row("dockyard rootless", res["rootless-api"], res["root-api"], "of root")
        if args.only in (None, "pull"):
            reg = start_registry(base / "registry")
            py = python_layer()
            img = push_image(reg, "bench/py", "latest", [busybox_layer(), gzip_layer(py)])
            ref = img.ref
            log(f"timing pull of {ref} ...")
            got = {"root": [], "rootless": []}
            for _ in range(n):
                for who in ("root", "rootless"):
                    t = time.perf_counter()
                    if who == "root":
                        root_d.cli("pull", ref)
                    else:
                        rl.cli("pull", ref)
                    got[who].append(time.perf_counter() - t)
                    (root_d.cli if who == "root" else rl.cli)("rmi", ref)
            # the rootless CLI call carries the wrapper's cost: measured alone, taken off
            wrap = []
            for _ in range(n):
                t = time.perf_counter()
                subprocess.run(rl.argv("true"), env=rl.env, check=True, cwd="/")
                wrap.append(time.perf_counter() - t)
            w = median(wrap)
            got["rootless"] = [x - w for x in got["rootless"]]
            res = {k: stats(v) for k, v in got.items()}
            res["wrapper_ms"] = w * 1000
            results["pull"] = res
            print(f"\npull {ref} (2 layers, ~{len(py) // 1_000_000} MB "
                  f"unpacked; rootless less its per-call wrapper, {w * 1000:.1f} ms)")
            row("dockyard as root", res["root"])
            row("dockyard rootless", res["rootless"], res["root"], "of root")
        save("rootless", results)
    finally:
        if reg is not None:
            reg.stop()
        if rl is not None:
            rl.stop()
        if root_d is not None:
            root_d.stop()
            subprocess.run(["umount", "-R", str(base / "root" / "root" / "overlay")],
                           capture_output=True)
        trl._kill_users_processes(pw.pw_uid)
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        drop_subid_ranges(USER)
        subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
