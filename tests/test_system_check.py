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


def test_system_check_runtime_and_network(tmp_path_factory, busybox_tar):
    """What belongs to nothing outside the store: a supervisor's state
    directory and its cgroup, a namespace file, a bridge, a port rule. Found,
    repaired, and what runs is left alone (the daemon in a namespace of its own).
    A cgroup of another daemon's (same parent, no state here) is not ours."""
    from test_network import own_daemon

    from dockyard import _core

    with own_daemon(tmp_path_factory, busybox_tar, []) as d:
        d.docker("network", "create", "checknet")
        cid = d.docker("run", "-d", "--network", "checknet", "-p", "18080:80", "busybox",
                       "sleep", "600").stdout.strip()
        c = d.client()
        assert c.get_json("/system/check", {"grace": 0}) == {"Problems": []}
        stray = "c" * 64
        state = d.base / "exec" / "containers" / stray
        state.mkdir(parents=True)
        cg = [p for p in _core.cgroup_dirs("dockyard") if os.path.isdir(p)][0]
        os.mkdir(os.path.join(cg, stray))
        other = os.path.join(cg, "b" * 64)
        os.mkdir(other)
        ns_file = d.base / "exec" / "netns" / ("d" * 64)
        ns_file.touch()
        made = []
        try:
            subprocess.run(["unshare", f"--net={ns_file}", "true"], check=True)
            # a bridge whose network's removal was cut short by a crash (and
            # one that isn't ours: another daemon's, not reported)
            d.ns("ip", "link", "add", "dy-0badc0ffee0", "type", "bridge")
            d.ns("ip", "link", "add", "dy-0theirs0000", "type", "bridge")
            subprocess.run(["sqlite3", str(d.root / "dockyard.db"),
                            "INSERT INTO doomed_links(name) VALUES ('dy-0badc0ffee0')"], check=True)
            d.ns("nft", "add element inet dockyard publish-any { tcp . 19999 : 10.9.9.9 . 80 }")
            made = [os.path.join(cg, stray), other]
            probs = c.get_json("/system/check", {"grace": 0, "verify": 0})["Problems"]
            found = sorted((p["Kind"], p["ID"], p["Repairable"]) for p in probs)
            assert found == [("container", stray, True), ("network", "d" * 64, True),
                             ("network", "dy-0badc0ffee0", True),
                             ("network", "inet dockyard", True)], probs
            assert any("cgroup" in p["Problem"] for p in probs)
            # a young namespace, cgroup or state directory may be a start in
            # progress: not reported with the default grace
            assert sorted(p["ID"] for p in c.get_json("/system/check", {"verify": 0})["Problems"]
                          ) == ["dy-0badc0ffee0", "inet dockyard"]
            probs = c.post_json("/system/check", {"repair": 1, "grace": 0, "verify": 0})["Problems"]
            assert all(p["Repaired"] for p in probs), probs
            assert c.get_json("/system/check", {"grace": 0}) == {"Problems": []}
            assert not os.path.exists(made[0]) and not state.exists() and not ns_file.exists()
            assert os.path.isdir(other)
            links = d.ns("ip", "link").stdout
            assert "dy-0badc0ffee0" not in links and "dy-0theirs0000" in links
            # what runs is untouched: its port still maps, its cgroup is there
            assert "18080" in d.ns("nft", "list", "map", "inet", "dockyard", "publish-any").stdout
            assert "19999" not in d.ns("nft", "list", "map", "inet", "dockyard",
                                       "publish-any").stdout
            assert d.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
        finally:
            for p in made:
                if os.path.isdir(p):
                    os.rmdir(p)
            subprocess.run(["umount", str(ns_file)], capture_output=True)
            subprocess.run(["rm", "-rf", str(state), str(ns_file)])
            d.docker("rm", "-f", cid, check=False)
            d.docker("network", "rm", "checknet", check=False)
