"""`dockyard system check` (GET/POST /system/check): damage a store by hand
and see it found, then repaired where that is safe."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import Daemon


def test_system_check_finds_and_repairs(tmp_path, busybox_tar):
    d = Daemon(tmp_path / "d", "overlay")
    d.base.mkdir()
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        cid = d.docker("create", "busybox", "true").stdout.decode().strip()
        env = dict(os.environ, DOCKYARD_HOST=d.host, DOCKYARD_NO_AUTOSTART="1")

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "dockyard", "system", "check", *args],
                                  env=env, capture_output=True, text=True)

        r = cli()
        assert (r.returncode, r.stdout) == (0, "No problems found\n")
        assert d.client().get_json("/system/check") == {"Problems": []}
        # a layer's file changed behind the store's back, a directory and a
        # tar-split record left by a crash, a container's layer gone
        overlay = d.root / "overlay"
        layer = next(p for p in overlay.iterdir() if (p / "diff" / "bin").is_dir())
        (layer / "diff" / "etc" / "passwd").write_text("tampered\n")
        os.makedirs(overlay / ("f" * 64) / "diff")
        (d.root / "tarsplit" / ("e" * 64)).write_bytes(b"x")
        old = 1_600_000_000  # older than what an operation in progress may hold
        os.utime(overlay / ("f" * 64) / "diff", (old, old))
        os.utime(d.root / "tarsplit" / ("e" * 64), (old, old))
        os.makedirs(overlay / ("a" * 64) / "diff")  # young: maybe a pull's, not reported
        r = cli("--quick")
        assert r.returncode == 1
        assert "a layer directory that belongs to nothing" in r.stdout
        assert "not the recorded" not in r.stdout  # --quick reads no layer
        probs = d.client().get_json("/system/check")["Problems"]
        kinds = sorted((p["Kind"], p["Problem"].split(" ")[1], p["Repairable"]) for p in probs)
        assert kinds == [("layer", "files", False), ("layer", "layer", True),
                         ("layer", "tar-split", True)], probs
        r = cli("--repair")
        assert r.returncode == 1  # the tampered layer can't be repaired
        assert r.stdout.count(" yes\n") == 2
        assert not (overlay / ("f" * 64)).exists()
        assert not (d.root / "tarsplit" / ("e" * 64)).exists()
        # a container whose layer vanished
        subprocess.run(["rm", "-rf", str(overlay / cid)], check=True)
        probs = d.client().get_json("/system/check", {"verify": 0})["Problems"]
        assert {"Kind": "container", "ID": cid, "Problem": f"its layer {cid} is missing",
                "Repairable": False, "Repaired": False} in probs
    finally:
        d.stop()
