"""A throwaway qemu VM with a pure cgroup v2 hierarchy, for end-to-end tests
of the engine on the cgroup layout most distributions now have (the test
machines are hybrid: v1 controllers plus /sys/fs/cgroup/unified).

- Kernel: Debian's packaged kernel (`apt-get download linux-image-<ver>-amd64`,
  unpacked with `dpkg-deb -x`, never installed), cached in
  /var/cache/dockyard-test/vm/kernel-<ver>/ with just vmlinuz, its config and
  the modules the VM needs (virtio-pci, 9p, overlay) and their dependencies.
- Initramfs: busybox-static's /bin/busybox and tests/vm/init.sh as /init,
  written as a newc cpio by this module (no cpio tool needed), cached by
  content.
- Root filesystem: the host's / over 9p, read-only, under a tmpfs overlay; a
  writable 9p share carries the job script in and the results out.

`python3 tests/vm/vmkit.py prepare` fetches and caches everything (.ci/setup
runs it); `python3 tests/vm/vmkit.py run -- CMD...` boots the VM and runs CMD.

Acceleration: KVM when /dev/kvm works for an ordinary guest, else TCG. A
/dev/kvm backed by kvm_pvm (a PVM host, as on Firecracker-style test
machines) only runs PVM-enabled guest kernels, so it counts as no KVM; a KVM
boot that doesn't reach the init within KVM_BOOT_S is retried under TCG.
`DOCKYARD_VM_ACCEL=kvm|tcg` forces one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DOCKYARD_VM_CACHE", "/var/cache/dockyard-test/vm"))
BUSYBOX = "/bin/busybox"
# What the init needs that Debian builds as modules (dependencies are added):
# virtio-pci and 9p for the shares, overlay for the root and the engine, zram
# for a swap device (memory.swap.max has something to limit).
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "zram"]
KVM_BOOT_S = 20.0          # a KVM boot reaches the init in ~1 s; else KVM doesn't work here
MARK = "dockyard-vm:"


class Unavailable(Exception):
    """qemu, the kernel or busybox can't be had on this machine."""


def log(msg: str) -> None:
    print(f"[vmkit] {msg}", file=sys.stderr, flush=True)


# --- kernel -----------------------------------------------------------------------

def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def kernel_package() -> str:
    """linux-image-<ver>-amd64, the package Debian's linux-image-amd64 points to."""
    try:
        r = _run(["apt-cache", "depends", "linux-image-amd64"])
    except FileNotFoundError as e:
        raise Unavailable("apt-cache not found") from e
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", r.stdout)
    if not m:
        raise Unavailable("apt-cache knows no linux-image-amd64 (run apt-get update): "
                          + (r.stderr or r.stdout).strip()[-300:])
    return m.group(1)


def _modinfo_depends(ko: Path) -> list[str]:
    data = ko.read_bytes()
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    if not m:
        return []
    return [d.decode().replace("-", "_") for d in m.group(1).split(b",") if d]


def _module_order(moddir: Path, wanted: list[str]) -> tuple[list[str], dict[str, Path]]:
    index: dict[str, Path] = {}
    for dp, _, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                index[f[:-3].replace("-", "_")] = Path(dp) / f
    order: list[str] = []

    def add(m: str, chain: tuple[str, ...] = ()) -> None:
        if m in order:
            return
        if m not in index:
            raise Unavailable(f"module {m} not in the kernel package (needed by {chain})")
        for d in _modinfo_depends(index[m]):
            if d not in chain:
                add(d, chain + (m,))
        order.append(m)

    for m in wanted:
        add(m)
    return order, index


def _complete(kdir: Path) -> bool:
    """A cached kernel with every module MODULES asks for (the list grows)."""
    try:
        have = set((kdir / "modules.list").read_text().split())
    except OSError:
        return False
    return (kdir / "vmlinuz").is_file() and set(MODULES) <= have


def cached_kernels() -> list[Path]:
    if not CACHE.is_dir():
        return []
    ks = [p for p in CACHE.glob("kernel-*") if _complete(p)]
    return sorted(ks, key=lambda p: p.stat().st_mtime, reverse=True)


def fetch_kernel(pkg: str | None = None) -> Path:
    """Download and unpack Debian's kernel package into the cache (once)."""
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        raise Unavailable("apt-get/dpkg-deb not found")
    if pkg is None:
        try:
            pkg = kernel_package()
        except Unavailable:  # no or stale package lists
            _run(["apt-get", "update", "-qq"])
            pkg = kernel_package()
    dest = CACHE / f"kernel-{pkg.removeprefix('linux-image-')}"
    if _complete(dest):
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=CACHE))
    try:
        os.chmod(work, 0o755)  # apt's _apt user may write the download here
        t = time.monotonic()
        r = _run(["apt-get", "download", "-q", pkg], cwd=work)
        if r.returncode != 0:  # stale package lists: the mirror moved on
            _run(["apt-get", "update", "-qq"])
            r = _run(["apt-get", "download", "-q", pkg], cwd=work)
        debs = list(work.glob("*.deb"))
        if r.returncode != 0 or not debs:
            raise Unavailable(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
        x = work / "x"
        r = _run(["dpkg-deb", "-x", str(debs[0]), str(x)])
        if r.returncode != 0:
            raise Unavailable(f"dpkg-deb -x failed: {r.stderr.strip()[-300:]}")
        vmlinuz = sorted((x / "boot").glob("vmlinuz-*"))
        mods = sorted((x / "lib" / "modules").glob("*"))
        if not vmlinuz or not mods:
            raise Unavailable(f"{pkg} has no vmlinuz or modules")
        order, index = _module_order(mods[0], MODULES)
        stage = work / "kernel"
        (stage / "modules").mkdir(parents=True)
        shutil.copy2(vmlinuz[0], stage / "vmlinuz")
        for cfg in (x / "boot").glob("config-*"):
            shutil.copy2(cfg, stage / "config")
        for m in order:
            shutil.copy2(index[m], stage / "modules" / f"{m}.ko")
        (stage / "modules.list").write_text("\n".join(order) + "\n")
        (stage / "release").write_text(mods[0].name + "\n")
        if dest.exists():  # cached with fewer modules: replace it
            os.rename(dest, work / "old")
        try:
            os.rename(stage, dest)
        except OSError:
            if not _complete(dest):  # not just a concurrent fetch that won
                raise
        log(f"kernel {pkg} cached in {dest} ({time.monotonic() - t:.1f} s)")
        for old in CACHE.glob("kernel-*"):  # the kernels Debian has moved on from
            if old != dest:
                shutil.rmtree(old, ignore_errors=True)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kernel() -> Path:
    """A cached kernel, else the current Debian one, fetched now."""
    if os.environ.get("DOCKYARD_VM_KERNEL"):
        return Path(os.environ["DOCKYARD_VM_KERNEL"])
    ks = cached_kernels()
    return ks[0] if ks else fetch_kernel()


# --- initramfs --------------------------------------------------------------------

class _Cpio:
    """The kernel's initramfs format (newc), uncompressed."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        n = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(n), 0)
        self.ino += 1
        self.buf += b"070701" + b"".join(b"%08X" % v for v in fields) + n
        self.buf += b"\0" * (-(110 + len(n)) % 4)
        self.buf += data + b"\0" * (-len(data) % 4)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return bytes(self.buf)


def initramfs(kdir: Path) -> Path:
    if not os.path.isfile(BUSYBOX):
        raise Unavailable(f"{BUSYBOX} (Debian's busybox-static) not found")
    init = (HERE / "init.sh").read_bytes()
    bb = Path(BUSYBOX).read_bytes()
    order = (kdir / "modules.list").read_text().split()
    mods = {m: (kdir / "modules" / f"{m}.ko").read_bytes() for m in order}
    h = hashlib.sha256(init + bb + "\n".join(order).encode())
    for m in order:
        h.update(mods[m])
    out = kdir / f"initramfs-{h.hexdigest()[:16]}.cpio"
    if out.is_file():
        return out
    c = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "newroot", "lower", "rw"):
        c.add(d, 0o40755)
    c.add("dev/console", 0o20600, rdev=(5, 1))
    c.add("dev/null", 0o20666, rdev=(1, 3))
    c.add("bin/busybox", 0o100755, bb)
    c.add("init", 0o100755, init)
    c.add("modules.list", 0o100644, ("\n".join(order) + "\n").encode())
    for m in order:
        c.add(f"lib/modules/{m}.ko", 0o100644, mods[m])
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_bytes(c.finish())
    os.rename(tmp, out)
    for old in kdir.glob("initramfs-*.cpio"):
        if old != out:
            old.unlink(missing_ok=True)
    return out


# --- running ----------------------------------------------------------------------

def qemu_binary() -> str:
    q = shutil.which("qemu-system-x86_64")
    if q is None:
        raise Unavailable("qemu-system-x86_64 not found (Debian's qemu-system-x86)")
    return q


def kvm_usable() -> tuple[bool, str]:
    forced = os.environ.get("DOCKYARD_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced == "kvm", f"DOCKYARD_VM_ACCEL={forced}"
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    if os.path.isdir("/sys/module/kvm_pvm"):
        return False, "/dev/kvm is kvm_pvm (runs only PVM guest kernels)"
    if not any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd")):
        return False, "neither kvm_intel nor kvm_amd is loaded"
    return True, "kvm_intel/kvm_amd"


@dataclass
class Result:
    rc: int | None                 # the job's exit status; None if it never finished
    output: str                    # the job's stdout+stderr
    console: str                   # the VM's serial console (kernel + init)
    accel: str
    seconds: float                 # boot to power-off
    boot_seconds: float | None     # until the job started
    files: dict[str, bytes] = field(default_factory=dict)  # other files the job left in /results

    def describe(self) -> str:
        boot = "-" if self.boot_seconds is None else f"{self.boot_seconds:.1f}"
        return f"accel={self.accel} rc={self.rc} total={self.seconds:.1f}s boot={boot}s"


def _qemu_cmd(accel: str, kdir: Path, initrd: Path, results: Path, console: Path,
              mem_mb: int, cpus: int) -> list[str]:
    append = ("console=ttyS0 panic=-1 oops=panic loglevel=4 quiet mitigations=off "
              "cgroup_no_v1=all nokaslr tsc=reliable")
    cmd = [qemu_binary(), "-nodefaults", "-no-user-config", "-no-reboot",
           "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
           "-m", str(mem_mb), "-smp", str(cpus),
           "-kernel", str(kdir / "vmlinuz"), "-initrd", str(initrd), "-append", append,
           "-virtfs",
           "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
           "-virtfs", f"local,path={results},mount_tag=results,security_model=none",
           "-nic", "none"]
    if accel == "kvm":
        cmd += ["-accel", "kvm", "-cpu", "host"]
    else:
        cmd += ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return cmd


def _die_with_parent() -> None:
    """qemu gets SIGKILL if the test process dies without its cleanup running."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _boot(accel: str, kdir: Path, initrd: Path, results: Path, timeout: float,
          mem_mb: int, cpus: int, boot_timeout: float | None
          ) -> tuple[str, float, float | None, bool]:
    """Run qemu to power-off (or kill it). Returns console, seconds, boot seconds,
    whether the init was reached."""
    console = results / "console.log"
    console.unlink(missing_ok=True)
    for f in ("rc", "output.log"):
        (results / f).unlink(missing_ok=True)
    cmd = _qemu_cmd(accel, kdir, initrd, results, console, mem_mb, cpus)
    qlog = results / "qemu.log"
    t0 = time.monotonic()
    boot = None
    reached = False
    with open(qlog, "wb") as ql:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=ql, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    try:
        while proc.poll() is None:
            el = time.monotonic() - t0
            text = console.read_text(errors="replace") if console.exists() else ""
            if not reached and f"{MARK} init started" in text:
                reached = True
            if boot is None and f"{MARK} job starting" in text:
                boot = el
            if boot_timeout is not None and not reached and el > boot_timeout:
                break
            if el > timeout:
                break
            time.sleep(0.2)
    finally:
        killed = proc.poll() is None
        if killed:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    seconds = time.monotonic() - t0
    text = console.read_text(errors="replace") if console.exists() else ""
    if killed:
        text += f"\n[vmkit] {accel}: VM killed after {seconds:.0f} s"
    reached = reached or f"{MARK} init started" in text
    q = qlog.read_text(errors="replace").strip()
    if q:
        text += "\n[qemu] " + q
    return text, seconds, boot, reached


def run(job: str, timeout: float = 400, mem_mb: int = 2048, cpus: int = 2,
        keep: list[str] | None = None) -> Result:
    """Boot the VM and run the shell script `job` as root in the host's root
    filesystem seen through a tmpfs overlay (tests/vm/init.sh). Everything it
    writes under /results whose name is in `keep` comes back in Result.files.
    The VM is killed after `timeout` seconds (rc is None then)."""
    kdir = kernel()
    initrd = initramfs(kdir)
    qemu_binary()
    kvm, why = kvm_usable()
    accels = ["kvm", "tcg"] if kvm else ["tcg"]
    if os.environ.get("DOCKYARD_VM_ACCEL") == "kvm":
        accels = ["kvm"]
    with tempfile.TemporaryDirectory(prefix="dockyard-vm-") as tmp:
        results = Path(tmp)
        (results / "job.sh").write_text(job)
        notes = []
        for accel in accels:
            console, seconds, boot, reached = _boot(
                accel, kdir, initrd, results, timeout, mem_mb, cpus,
                KVM_BOOT_S if accel == "kvm" and len(accels) > 1 else None)
            if reached or accel == accels[-1]:
                break
            tail = console.strip()[-300:].replace("\n", " | ")
            notes.append(f"{accel} did not reach the init in {seconds:.0f} s ({tail}); "
                         "retrying under TCG")
            log(notes[-1])
        rcf = results / "rc"
        rc = int(rcf.read_text().strip()) if rcf.is_file() and rcf.read_text().strip() else None
        outf = results / "output.log"
        out = outf.read_text(errors="replace") if outf.is_file() else ""
        files = {k: (results / k).read_bytes() for k in (keep or []) if (results / k).is_file()}
        if not kvm:
            notes.append(f"no KVM ({why})")
        console = "\n".join(notes + [console]) if notes else console
        return Result(rc, out, console, accel, seconds, boot, files)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("prepare", "run"):
        print("usage: vmkit.py prepare | run [--] CMD...", file=sys.stderr)
        return 2
    try:
        if argv[0] == "prepare":
            try:
                k = fetch_kernel()
            except Unavailable:
                if not cached_kernels():
                    raise
                k = cached_kernels()[0]
            print(initramfs(k))
            return 0
        cmd = argv[1:]
        if cmd[:1] == ["--"]:
            cmd = cmd[1:]
        r = run(shlex.join(cmd or ["true"]) + "\n")
    except Unavailable as e:
        print(f"vmkit: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(r.output)
    print(r.describe(), file=sys.stderr)
    if r.rc is None:
        print(r.console[-4000:], file=sys.stderr)
        return 1
    return r.rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
