"""pause/unpause, top, diff, export, commit, cp and stats through the real
docker CLI against Dockyard (real cgroups, real overlay mounts)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest


pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py


def _run_d(daemon, bb, *cmd: str, name: str | None = None) -> str:
    args = ["run", "-d"] + (["--name", name] if name else []) + [bb, *cmd]
    return daemon.docker(*args).stdout.decode().strip()


def _exec_out(daemon, cid: str, *cmd: str) -> str:
    return daemon.docker("exec", cid, *cmd).stdout.decode()


def test_pause_freezes_and_unpause_resumes(daemon, bb):
    cid = _run_d(daemon, bb, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; "
                 "sleep 0.05; done")
    time.sleep(0.3)
    daemon.docker("pause", cid)
    st = json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]
    assert st["Paused"] is True and st["Status"] == "paused"
    assert "(Paused)" in daemon.docker("ps").stdout.decode()
    r = daemon.docker("pause", cid, check=False)
    assert r.returncode == 1 and f"Container {cid} is already paused".encode() in r.stderr
    c = daemon.docker("cp", f"{cid}:/tmp/n", "-").stdout
    time.sleep(0.5)
    assert daemon.docker("cp", f"{cid}:/tmp/n", "-").stdout == c
    daemon.docker("unpause", cid)
    st = json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]
    assert st["Paused"] is False and st["Status"] == "running"
    time.sleep(0.5)
    assert daemon.docker("cp", f"{cid}:/tmp/n", "-").stdout != c
    r = daemon.docker("unpause", cid, check=False)
    assert r.returncode == 1 and f"Container {cid} is not paused".encode() in r.stderr
    # a paused container still stops (and kill works too)
    daemon.docker("pause", cid)
    t = time.monotonic()
    daemon.docker("stop", "-t", "2", cid)
    assert time.monotonic() - t < 10
    st = json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]
    assert st["Running"] is False and st["Paused"] is False
    r = daemon.docker("pause", cid, check=False)
    assert r.returncode == 1 and f"Container {cid} is not running".encode() in r.stderr
    cid2 = _run_d(daemon, bb, "sleep", "1000")
    daemon.docker("pause", cid2)
    daemon.docker("kill", cid2)
    daemon.docker("wait", cid2)
    daemon.docker("rm", cid2)
    cid3 = _run_d(daemon, bb, "sleep", "1000")
    daemon.docker("pause", cid3)
    daemon.docker("rm", "-f", cid3)


def test_top(daemon, bb):
    cid = _run_d(daemon, bb, "sh", "-c", "sleep 1001 & sleep 1002; echo done")
    time.sleep(0.3)
    out = daemon.docker("top", cid).stdout.decode().splitlines()
    assert out[0].split()[:2] == ["UID", "PID"]
    cmds = [line.split(None, 7)[-1] for line in out[1:]]
    assert any("sleep 1001" in c for c in cmds) and any("sleep 1002" in c for c in cmds)
    assert any(c.startswith("sh -c") for c in cmds)
    assert len(out) == 4
    body = daemon.client().get_json(f"/containers/{cid}/top", {"ps_args": "-o pid,comm"})
    assert body["Titles"] == ["PID", "COMMAND"]
    assert sorted(p[1] for p in body["Processes"]) == ["sh", "sleep", "sleep"]
    daemon.docker("stop", "-t", "0", cid)
    r = daemon.docker("top", cid, check=False)
    assert r.returncode == 1 and b"is not running" in r.stderr


def test_diff_export_commit(daemon, bb, tmp_path):
    cid = _run_d(daemon, bb, "sh", "-c", "echo hello > /new; echo x >> /etc/passwd; "
                 "touch /etc/added; rm /bin/ls; sleep 1000")
    time.sleep(0.5)
    lines = daemon.docker("diff", cid).stdout.decode().splitlines()
    assert "A /new" in lines and "C /etc" in lines and "C /etc/passwd" in lines
    assert "A /etc/added" in lines and "D /bin/ls" in lines and "C /bin" in lines
    assert lines == sorted(lines, key=lambda x: x[2:])
    exp = tmp_path / "exp.tar"
    daemon.docker("export", "-o", str(exp), cid)
    with tarfile.open(exp) as t:
        names = set(t.getnames())
        assert "bin/busybox" in names and "new" in names and "bin/ls" not in names
        assert t.extractfile("new").read() == b"hello\n"
    iid = daemon.docker("commit", "-a", "me", "-m", "msg", cid, "committed:v1"
                        ).stdout.decode().strip()
    assert iid.startswith("sha256:")
    # the container was thawed again after the commit (pause=1 by default)
    st = json.loads(daemon.docker("inspect", cid).stdout)[0]["State"]
    assert st["Running"] and not st["Paused"]
    r = daemon.docker("run", "--rm", "committed:v1", "sh", "-c",
                      "cat /new; test -e /bin/ls || echo gone; tail -1 /etc/passwd")
    assert r.stdout == b"hello\ngone\nx\n"
    img = json.loads(daemon.docker("image", "inspect", "committed:v1").stdout)[0]
    assert img["Author"] == "me" and img["Container"] == cid
    assert img["Config"]["Cmd"] == ["sh", "-c", "echo hello > /new; echo x >> /etc/passwd; "
                                    "touch /etc/added; rm /bin/ls; sleep 1000"]
    assert len(img["RootFS"]["Layers"]) == 2
    hist = daemon.docker("history", "--no-trunc", "committed:v1").stdout.decode()
    assert "msg" in hist
    iid2 = daemon.docker("commit", "-c", 'CMD ["echo","x"]', "-c", "ENV A=b", cid,
                         "committed:v2").stdout.decode().strip()
    assert daemon.docker("run", "--rm", "committed:v2").stdout == b"x\n"
    assert daemon.docker("run", "--rm", "committed:v2", "sh", "-c", "echo $A"
                         ).stdout == b"b\n"
    insp = json.loads(daemon.docker("image", "inspect", iid2).stdout)[0]
    assert insp["Parent"] == json.loads(daemon.docker("inspect", cid).stdout)[0]["Image"]
    daemon.docker("rm", "-f", cid)
    daemon.docker("rmi", "committed:v1", "committed:v2")


def test_cp_both_directions(daemon, bb, tmp_path):
    cid = _run_d(daemon, bb, "sh", "-c", "mkdir -p /data/sub; echo a > /data/a; "
                 "echo b > /data/sub/b; ln -s /data/a /data/link; sleep 1000")
    time.sleep(0.3)
    out = tmp_path / "out"
    out.mkdir()
    daemon.docker("cp", f"{cid}:/data", str(out))
    assert (out / "data" / "a").read_text() == "a\n"
    assert (out / "data" / "sub" / "b").read_text() == "b\n"
    assert os.readlink(out / "data" / "link") == "/data/a"
    daemon.docker("cp", f"{cid}:/data/a", str(out / "single"))
    assert (out / "single").read_text() == "a\n"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from host\n")
    daemon.docker("cp", str(src / "f"), f"{cid}:/data/sub/")
    daemon.docker("cp", str(src), f"{cid}:/tmp/")
    assert _exec_out(daemon, cid, "cat", "/data/sub/f", "/tmp/src/f") == "from host\n" * 2
    r = daemon.docker("cp", str(src / "f"), f"{cid}:/nonexistent/dir/", check=False)
    assert r.returncode == 1
    r = daemon.docker("cp", f"{cid}:/nope", str(out), check=False)
    assert r.returncode == 1 and b"No such container:path" in r.stderr
    # stopped containers too
    daemon.docker("stop", "-t", "0", cid)
    daemon.docker("cp", str(src / "f"), f"{cid}:/stopped-file")
    daemon.docker("cp", f"{cid}:/stopped-file", str(out / "back"))
    assert (out / "back").read_text() == "from host\n"
    # the API's stat header
    resp = daemon.client().request("HEAD", f"/containers/{cid}/archive", {"path": "/data/link"})
    import base64

    stat = json.loads(base64.b64decode(resp.headers["x-docker-container-path-stat"]))
    resp.close()
    assert stat["name"] == "link" and stat["linkTarget"] == "/data/a"
    assert stat["mode"] & (1 << 27)


def test_cp_symlinks_stay_inside_rootfs(daemon, bb, tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    secret = host_dir / "secret"
    secret.write_text("host secret\n")
    rel = "../" * 30 + str(host_dir).lstrip("/")
    cid = _run_d(daemon, bb, "sh", "-c",
                 f"ln -s / /rootlink; ln -s {rel} /uplink; ln -s {host_dir} /abslink; "
                 "mkdir /d; ln -s ../../../../../../.. /d/up; sleep 1000")
    time.sleep(0.3)
    # reads through the links see the container's files, never the host's
    r = daemon.docker("cp", f"{cid}:/uplink/secret", "-", check=False)
    assert b"host secret" not in r.stdout and r.returncode == 1
    r = daemon.docker("cp", f"{cid}:/abslink/secret", "-", check=False)
    assert b"host secret" not in r.stdout and r.returncode == 1
    r = daemon.docker("cp", f"{cid}:/d/up/etc/passwd", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.extractfile("passwd").read().startswith(b"root:x:0:0:root:/root:/bin/sh")
    # writes through the links land inside the container
    f = tmp_path / "evil"
    f.write_text("pwned\n")
    for dest in ("/rootlink/", "/d/up/", "/uplink/", "/abslink/"):
        daemon.docker("cp", str(f), f"{cid}:{dest}", check=False)
    assert not (host_dir / "evil").exists()
    assert not os.path.exists("/evil")
    assert _exec_out(daemon, cid, "cat", "/evil") == "pwned\n"
    # the links named by the tar's own entries do not lead out either
    tarf = tmp_path / "t.tar"
    with tarfile.open(tarf, "w") as t:
        ti = tarfile.TarInfo("esc")
        ti.type = tarfile.SYMTYPE
        ti.linkname = str(host_dir)
        t.addfile(ti)
        data = b"through\n"
        ti = tarfile.TarInfo("esc/through")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    resp = daemon.client().request("PUT", f"/containers/{cid}/archive", {"path": "/d"},
                                   body=tarf.read_bytes(), check=False)
    resp.close()
    assert not (host_dir / "through").exists()


def test_stats(daemon, bb):
    cid = _run_d(daemon, bb, "sh", "-c", "while :; do :; done", name="busy")
    time.sleep(0.5)
    out = daemon.docker("stats", "--no-stream", "busy").stdout.decode().splitlines()
    assert out[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    row = out[1].split()
    assert row[0] == cid[:12] and row[1] == "busy"
    cpu = float(row[2].rstrip("%"))
    assert cpu > 20.0
    assert row[3].endswith("B") and row[4] == "/" and row[5].endswith("B")
    assert not row[3].startswith("0B")
    body = daemon.client().get_json(f"/containers/{cid}/stats", {"stream": "0"})
    assert body["id"] == cid and body["name"] == "/busy"
    assert body["cpu_stats"]["cpu_usage"]["total_usage"] > \
        body["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert body["cpu_stats"]["system_cpu_usage"] > body["precpu_stats"]["system_cpu_usage"]
    assert body["memory_stats"]["usage"] > 0 and body["memory_stats"]["limit"] > 0
    assert body["pids_stats"]["current"] >= 1
    one = daemon.client().get_json(f"/containers/{cid}/stats",
                                   {"stream": "0", "one-shot": "1"})
    assert one["preread"] == "0001-01-01T00:00:00Z"
    # streamed: one JSON a second, the first without precpu_stats
    resp = daemon.client().request("GET", f"/containers/{cid}/stats", {"stream": "1"})
    lines = []
    for line in resp.iter_lines():
        lines.append(json.loads(line))
        if len(lines) == 2:
            break
    resp.close()
    assert lines[0]["preread"] == "0001-01-01T00:00:00Z"
    assert "system_cpu_usage" not in lines[0]["precpu_stats"]
    assert lines[1]["precpu_stats"]["cpu_usage"]["total_usage"] == \
        lines[0]["cpu_stats"]["cpu_usage"]["total_usage"]
    assert lines[1]["preread"] == lines[0]["read"]
    daemon.docker("rm", "-f", cid)
    # a stopped container: one zeroed sample
    cid = _run_d(daemon, bb, "true")
    daemon.docker("wait", cid)
    out = daemon.docker("stats", "--no-stream", cid).stdout.decode().splitlines()
    assert out[1].split()[2] == "0.00%"


def test_scoped_resolution(tmp_path):
    from dockyard.containers.scopedpath import resolve

    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "f").write_text("in\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "f").write_text("out\n")
    os.symlink("/", root / "a" / "slash")
    os.symlink("../../../../..", root / "a" / "b" / "up")
    os.symlink(str(tmp_path / "etc"), root / "abs")
    os.symlink("loop", root / "loop")

    def read(path: str) -> str:
        sp = resolve(str(root), path, follow_last=True)
        try:
            fd = os.open(f"/proc/self/fd/{sp.fd}", os.O_RDONLY)
            with os.fdopen(fd) as f:
                return f.read()
        finally:
            sp.close()

    assert read("/a/slash/etc/f") == "in\n"
    assert read("/a/b/up/etc/f") == "in\n"
    assert read("a/b/up/a/b/up/etc/f") == "in\n"
    with pytest.raises(FileNotFoundError):
        read("/abs/f")
    with pytest.raises(OSError):
        read("/loop/x")
    sp = resolve(str(root), "/a/slash")
    try:
        assert sp.name == "slash" and sp.abs == "/a/slash"
    finally:
        sp.close()
    sp = resolve(str(root), "/a/slash", follow_last=True)
    try:
        assert sp.abs == "/"
    finally:
        sp.close()


def test_commit_of_a_container_exiting_meanwhile(daemon, bb):
    """docker-py's CommitTest: commit (pause=1) right after starting a
    container that exits at once; the freeze may find it exiting and the thaw
    its cgroup gone, which is no error."""
    c = daemon.client()
    for _ in range(10):
        cid = c.post_json("/containers/create", None,
                          {"Image": "busybox", "Cmd": ["touch", "/test"]})["Id"]
        c.request("POST", f"/containers/{cid}/start").close()
        img = c.post_json("/commit", {"container": cid, "pause": "1"})["Id"]
        c.request("DELETE", f"/containers/{cid}", {"force": 1}).close()
        c.request("DELETE", f"/images/{img}").close()
