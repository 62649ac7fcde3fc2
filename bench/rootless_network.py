"""Rootless networking, side by side with Dockyard as root:

- a published port's throughput, host loopback -> container (BENCH_MIB MiB,
  default 256, pushed into `nc -l` in the container; median of 5): the
  rootless daemon's in-process forwarder vs root's kernel DNAT;
- the forwarder alone (`network/forward.py` in this process, a Python sink
  on the loopback of a namespace of the bench's own), 1 GiB, vs connecting
  to the sink directly: what the relay costs, without busybox nc's limits;
- `run --rm busybox true` as the rootless user, on the default bridge (the
  rootless network namespace, slirp4netns) and with `--network none`, each
  beside root's.

Run as root: it makes a user of its own (with subordinate IDs, as
tests/test_rootless.py does, whose helpers it uses), two network namespaces
(one per daemon: their "hosts"), makes /dev/net/tun usable for the run, and
removes everything afterwards. Traffic stays on those namespaces' loopback.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent / "python")]

from common import median, save, table, timeit  # noqa: E402
from conftest import busybox_rootfs, drop_subid_ranges, make_tar  # noqa: E402
from test_rootless import COUNT, START, USER, RootlessUser, _kill_users_processes  # noqa: E402

from dockyard import _core, idmap  # noqa: E402

MIB = int(os.environ.get("BENCH_MIB", "256"))
RUNS = int(os.environ.get("BENCH_RUNS", "10"))
SINK = "while :; do nc -l -p 8080 >/dev/null; done"


def sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True)


class NsUser(RootlessUser):
    def __init__(self, *a, netns: str, **kw) -> None:
        super().__init__(*a, **kw)
        self.netns = netns

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *super().argv(*cmd)]


def send_all(s: socket.socket, mib: int) -> float:
    """Seconds to send `mib` MiB on connected `s` and see the peer close it
    (every byte read); `s` is closed."""
    chunk = b"\0" * (1 << 20)
    with s:
        t = time.perf_counter()
        for _ in range(mib):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        return time.perf_counter() - t


def push(ns: str, port: int, mib: int) -> float:
    """Seconds to send `mib` MiB to a sink behind ns's 127.0.0.1:port and see
    it close (every byte read); again when the sink was not listening yet
    (its loop restarts nc after each connection)."""
    deadline = time.monotonic() + 30
    while True:
        s = socket.socket(fileno=_core.netns_socket(f"/run/netns/{ns}", socket.AF_INET,
                                                     socket.SOCK_STREAM))
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        return send_all(s, mib)


def throughput(cli, ns: str, port: int) -> float:
    cli("run", "-d", "--name", "sink", "-p", f"127.0.0.1:{port}:8080", "busybox", "sh", "-c",
        SINK)
    try:
        push(ns, port, 8)  # warm-up (and waits for the listener)
        return median([push(ns, port, MIB) for _ in range(5)])
    finally:
        cli("rm", "-f", "sink")


def forwarder_alone(mib: int = 1024) -> dict[str, float]:
    """Seconds for `mib` MiB into a sink in a namespace: straight, and
    through the forwarder from this namespace's loopback (median of 3 each)."""
    import threading

    from dockyard.network.forward import PortForwarder
    from dockyard.network.ports import Binding, PortReservations

    d = Path(tempfile.mkdtemp(prefix="dy-bench-fwd-"))
    ns = str(d / "ns")
    _core.netns_create(ns)
    srv = socket.socket(fileno=_core.netns_socket(ns, socket.AF_INET, socket.SOCK_STREAM))
    srv.bind(("127.0.0.1", 9090))
    srv.listen(8)

    def sink() -> None:
        buf = bytearray(1 << 20)
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                while c.recv_into(buf):
                    pass

    threading.Thread(target=sink, daemon=True).start()
    fwd, res = PortForwarder(ns), PortReservations()

    def send(s: socket.socket) -> float:
        return send_all(s, mib)

    def direct() -> float:
        s = socket.socket(fileno=_core.netns_socket(ns, socket.AF_INET, socket.SOCK_STREAM))
        s.connect(("127.0.0.1", 9090))
        return send(s)

    try:
        held = res.reserve("b", "b", "", [Binding("tcp", 9090, "127.0.0.1", 0)])
        fwd.serve("b", list(zip(held, res.sockets("b"))), "127.0.0.1")
        port = held[0].host_port
        return {"direct_s": median([direct() for _ in range(3)]),
                "forwarded_s": median([send(socket.create_connection(("127.0.0.1", port)))
                                       for _ in range(3)])}
    finally:
        fwd.close()
        res.release_all()
        srv.close()
        _core.netns_remove(ns)
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    tag = secrets.token_hex(3)
    rns, pns = f"dyb-r{tag}", f"dyb-p{tag}"
    tun = os.stat("/dev/net/tun").st_mode & 0o7777
    base = Path(tempfile.mkdtemp(prefix="dy-bench-rlnet-"))
    base.chmod(0o755)
    subprocess.run(["userdel", USER], capture_output=True)
    drop_subid_ranges(USER)
    sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER)
    pw = pwd.getpwnam(USER)
    for path in (idmap.SUBUID, idmap.SUBGID):
        with open(path, "a") as f:
            f.write(f"{USER}:{START}:{COUNT}\n")
    sh("ip", "netns", "add", rns)
    sh("ip", "netns", "add", pns)
    u = NsUser(pw, base, "rl", netns=rns)
    root_proc = None
    res: dict[str, float] = {}
    alone = forwarder_alone()
    try:
        os.chmod("/dev/net/tun", 0o666)
        for n in (rns, pns):
            sh("ip", "-n", n, "link", "set", "lo", "up")
        tar = make_tar(busybox_rootfs(base / "rootfs"), base / "bb.tar")
        tar.chmod(0o644)
        # rootless
        u.start()
        u.cli("import", "-c", 'CMD ["sh"]', str(tar), "busybox")
        res["rootless_port_s"] = throughput(u.cli, rns, 28080)
        res["run_bridge"] = median(timeit(lambda: u.cli("run", "--rm", "busybox", "true"),
                                          RUNS, 2))
        res["run_none"] = median(timeit(
            lambda: u.cli("run", "--rm", "--network", "none", "busybox", "true"), RUNS, 2))
        u.stop()
        # root, its bridge and kernel DNAT, in a namespace of its own
        sock = base / "root.sock"
        root_proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{pns}", sys.executable, "-m", "dockyard", "daemon",
             "-H", f"unix://{sock}", "-g", str(base / "root-data"), "--exec-root",
             str(base / "root-exec"), "-p", str(base / "root.pid"), "--bridge", "dockyard0"],
            stdout=open(base / "root.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

        def rcli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "dockyard", "-H", f"unix://{sock}",
                                   *args], check=True, capture_output=True, text=True)

        for _ in range(300):
            if sock.exists() and subprocess.run(
                    [sys.executable, "-m", "dockyard", "-H", f"unix://{sock}", "version"],
                    capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        rcli("import", "-c", 'CMD ["sh"]', str(tar), "busybox")
        res["root_port_s"] = throughput(rcli, pns, 28080)
        res["root_run_bridge"] = median(timeit(lambda: rcli("run", "--rm", "busybox", "true"),
                                               RUNS, 2))
        res["root_run_none"] = median(timeit(
            lambda: rcli("run", "--rm", "--network", "none", "busybox", "true"), RUNS, 2))
    finally:
        u.stop()
        if root_proc:
            os.killpg(root_proc.pid, signal.SIGTERM)
            root_proc.wait(30)
        _kill_users_processes(pw.pw_uid)
        os.chmod("/dev/net/tun", tun)
        sh("ip", "netns", "del", rns)
        sh("ip", "netns", "del", pns)
        drop_subid_ranges(USER)
        subprocess.run(["userdel", USER], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "root-exec")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    gib = MIB / 1024
    print(f"\npublished port, host loopback -> container, {MIB} MiB, median of 5: rootless "
          f"forwarder {res['rootless_port_s']:.3f} s ({gib / res['rootless_port_s']:.2f} GiB/s), "
          f"root (kernel DNAT) {res['root_port_s']:.3f} s "
          f"({gib / res['root_port_s']:.2f} GiB/s)")
    print(f"forwarder alone, 1 GiB into a Python sink, median of 3: straight "
          f"{1 / alone['direct_s']:.2f} GiB/s, through the forwarder "
          f"{1 / alone['forwarded_s']:.2f} GiB/s")
    res.update({f"alone_{k}": v for k, v in alone.items()})
    table(f"run --rm busybox true, median of {RUNS}: rootless (dockyard column) vs root", [
        ("default bridge", res["run_bridge"], res["root_run_bridge"], "root, its bridge"),
        ("--network none", res["run_none"], res["root_run_none"], "root"),
    ])
    save("rootless_network", res)


if __name__ == "__main__":
    main()
