"""`dockyard version` end to end (goal: under 120 ms), against `docker version`
talking to the same Dockyard daemon, and `python3 -c pass` as the floor; then
`ps` and `images` (the fast path too) and `network ls`, `volume ls` (through
Typer) against docker's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, save, table, timeit


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="dy-bench-cli-"))
    sock = base / "d.sock"
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{sock}",
                             "-g", str(base / "root"), "-p", str(base / "pid"),
                             "--exec-root", str(base / "exec"), "-s", "vfs",
                             "--bridge", "none", "--iptables=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        time.sleep(0.3)
        exe = shutil.which("dockyard")
        real = os.path.realpath(exe) if exe else None
        # the command as pip installs it (pyenv shims in front of it are
        # skipped: they are shell scripts of their own)
        entry = os.path.join(os.path.dirname(sys.executable), "dockyard")
        env = dict(os.environ, DOCKYARD_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}",
                   DOCKYARD_NO_AUTOSTART="1")
        ours = timeit(lambda: subprocess.run([entry, "version"], env=env, check=True,
                                             capture_output=True), runs=15, warmup=2)
        floor_flags = ["-S"]
        floor = timeit(lambda: subprocess.run([sys.executable, *floor_flags, "-c", "pass"],
                                              check=True), runs=15, warmup=2)
        docker = shutil.which("docker")
        ref = timeit(lambda: subprocess.run([docker, "version"], env=env, check=True,
                                            capture_output=True), runs=15, warmup=2) \
            if docker else [0.0]
        rows = [("dockyard version (our CLI, our daemon)", median(ours), median(ref),
                 "docker version (Go CLI, our daemon)"),
                (f"python3 {' '.join(floor_flags)} -c pass (interpreter floor)".replace("  ", " "),
                 median(floor), 0.0, "")]
        cmds = {}
        for cmd in (["ps"], ["images"], ["network", "ls"], ["volume", "ls"]):
            o = median(timeit(lambda: subprocess.run([entry, *cmd], env=env, check=True,
                                                     capture_output=True), runs=15, warmup=2))
            d = median(timeit(lambda: subprocess.run([docker, *cmd], env=env, check=True,
                                                     capture_output=True), runs=15, warmup=2)) \
                if docker else 0.0
            rows.append((f"dockyard {' '.join(cmd)}", o, d, f"docker {' '.join(cmd)}"))
            cmds[" ".join(cmd)] = {"dockyard_s": o, "docker_s": d}
        table("CLI start-up, median of 15", rows)
        print(f"goal: dockyard version < 0.120 s -> {'met' if median(ours) < 0.12 else 'NOT met'}"
              f" (entry {entry}, PATH dockyard -> {real})")
        save("cli_startup", {"dockyard_version_s": median(ours), "docker_version_s": median(ref),
                             "python_floor_s": median(floor), "commands": cmds})
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
