"""The daemon over a real unix socket: image endpoints, Docker's status codes
and JSON shapes, with our CLI and with the real docker CLI."""

from __future__ import annotations

import json
import os
import stat
import tarfile

import pytest

from dockyard.cli.client import APIError


def import_busybox(d, tar, name="busybox:latest", cli="dockyard"):
    run = d.cli if cli == "dockyard" else d.docker
    r = run("import", str(tar), name)
    out = r.stdout.decode().strip()
    assert out.startswith("sha256:") and len(out) == 71
    return out


def test_ping_headers(daemon):
    c = daemon.client()
    r = c.request("GET", "/_ping")
    body = r.read()
    r.close()
    assert body == b"OK"
    assert r.headers["api-version"] == "1.41"
    assert r.headers["ostype"] == "linux"
    assert r.headers["docker-experimental"] == "false"
    assert "no-cache" in r.headers["cache-control"]
    r = c.request("HEAD", "/_ping")
    r.close()
    assert r.status == 200


def test_unversioned_and_versioned_paths(daemon):
    c = daemon.client()
    r = c.request("GET", "/version")
    assert r.json()["ApiVersion"] == "1.41"
    c.version = "1.99"
    with pytest.raises(APIError) as e:
        c.get_json("/version")
    assert e.value.status == 400 and "too new" in e.value.message


def test_unknown_route_is_json_404(daemon):
    c = daemon.client()
    with pytest.raises(APIError) as e:
        c.get_json("/nonsense")
    assert e.value.status == 404 and e.value.message == "page not found"


def test_socket_mode(daemon):
    st = os.stat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) in (0o660, 0o600)
    assert st.st_uid == 0


def test_import_list_inspect_history(daemon, busybox_tar):
    iid = import_busybox(daemon, busybox_tar, "bbtest:1")
    imgs = daemon.client().get_json("/images/json")
    mine = [i for i in imgs if i["Id"] == iid]
    assert mine and mine[0]["RepoTags"] == ["bbtest:1"]
    assert mine[0]["Size"] > 1_000_000
    insp = daemon.client().get_json("/images/bbtest:1/json")
    assert insp["Id"] == iid
    assert insp["RootFS"]["Type"] == "layers" and len(insp["RootFS"]["Layers"]) == 1
    assert insp["Comment"] == "Imported from -"
    assert insp["Os"] == "linux" and insp["Architecture"] == "amd64"
    # Docker's size: what the files hold (not the tar's length with headers)
    with tarfile.open(busybox_tar) as t:
        assert insp["Size"] == sum(m.size for m in t.getmembers() if m.isfile())
    # unique prefix lookup
    assert daemon.client().get_json(f"/images/{iid[7:15]}/json")["Id"] == iid
    hist = daemon.client().get_json("/images/bbtest:1/history")
    assert hist[0]["Id"] == iid and hist[0]["Tags"] == ["bbtest:1"]
    out = daemon.cli("images", "bbtest").stdout.decode().splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:3] == ["bbtest", "1", iid[7:19]]


def test_image_not_found(daemon):
    with pytest.raises(APIError) as e:
        daemon.client().get_json("/images/nosuchimage/json")
    assert e.value.status == 404
    assert e.value.message == "no such image: nosuchimage: No such image: nosuchimage:latest"
    for method, path in (("DELETE", "/images/nosuchimage"), ("GET", "/images/nosuchimage/history"),
                         ("POST", "/images/nosuchimage/tag?repo=x")):
        r = daemon.client().request(method, path, check=False)
        assert (r.status, r.json()) == (404, {"message": "No such image: nosuchimage:latest"})
        r.close()
    r = daemon.cli("rmi", "nosuchimage", check=False)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == \
        "Error response from daemon: No such image: nosuchimage:latest"


def test_tag_untag_delete_conflicts(daemon, busybox_tar):
    iid = import_busybox(daemon, busybox_tar, "conflict/a:1")
    daemon.cli("tag", "conflict/a:1", "conflict/b:2")
    r = daemon.cli("rmi", iid[7:19], check=False)
    assert r.returncode == 1
    assert "must be forced) - image is referenced in multiple repositories" in r.stderr.decode()
    out = daemon.cli("rmi", "conflict/b:2").stdout.decode()
    assert out.strip() == "Untagged: conflict/b:2"
    out = daemon.cli("rmi", "conflict/a:1").stdout.decode().splitlines()
    assert out == ["Untagged: conflict/a:1", f"Deleted: {iid}"]


def test_import_changes_and_message(daemon, busybox_tar):
    daemon.cli("import", "-c", 'CMD ["sh", "-c", "echo hi"]', "-c", "ENV A=b",
               "-m", "hello", str(busybox_tar), "changed:1")
    cfg = daemon.client().get_json("/images/changed:1/json")
    assert cfg["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Config"]["Env"] == ["A=b"]
    assert cfg["Comment"] == "hello"


def test_bad_import_leaves_store_unchanged(daemon, tmp_path):
    before = daemon.client().get_json("/images/json")
    def layers() -> list[str]:  # ".removing-*": trees being deleted in the background
        return sorted(p for p in os.listdir(daemon.root / daemon.driver) if not p.startswith("."))

    layers_before = layers()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(4000))
    r = daemon.cli("import", str(bad), "broken:1", check=False)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("Error response from daemon: ")
    assert daemon.client().get_json("/images/json") == before
    assert layers() == layers_before


def test_invalid_reference(daemon, busybox_tar):
    r = daemon.cli("tag", "busybox", "Bad:Name", check=False)
    assert r.returncode == 1
    assert "invalid reference format" in r.stderr.decode()


def test_save_load_roundtrip(daemon, busybox_tar, tmp_path):
    iid = import_busybox(daemon, busybox_tar, "saveme:1")
    out = tmp_path / "saved.tar"
    daemon.cli("save", "-o", str(out), "saveme:1")
    with tarfile.open(out) as t:
        names = t.getnames()
        manifest = json.load(t.extractfile("manifest.json"))
    assert "index.json" in names and "oci-layout" in names
    assert manifest[0]["RepoTags"] == ["saveme:1"]
    daemon.cli("rmi", "saveme:1")
    r = daemon.cli("load", "-i", str(out))
    assert r.stdout.decode().strip() == "Loaded image: saveme:1"
    assert daemon.client().get_json("/images/saveme:1/json")["Id"] == iid


def test_load_garbage_is_clean_error(daemon):
    before = daemon.client().get_json("/images/json")
    r = daemon.cli("load", input=b"not a tarball" * 100, check=False)
    assert r.returncode == 1
    assert daemon.client().get_json("/images/json") == before


def test_prune_dangling(daemon, busybox_tar):
    iid = import_busybox(daemon, busybox_tar, "prune:1")
    daemon.cli("import", "-m", "other", str(busybox_tar), "prune:1")  # moves the tag
    out = daemon.client().post_json("/images/prune")
    assert {"Deleted": iid} in (out["ImagesDeleted"] or [])


def test_system_df(daemon, busybox_tar):
    import_busybox(daemon, busybox_tar, "df:1")
    df = daemon.client().get_json("/system/df")
    assert df["LayersSize"] > 0 and df["Images"]
    out = daemon.cli("system", "df").stdout.decode().splitlines()
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]


def test_version_and_info_format(daemon):
    out = daemon.cli("version", "--format", "{{.Server.ApiVersion}}").stdout.decode()
    assert out.strip() == "1.41"
    out = daemon.cli("info", "--format", "{{.Driver}} {{json .Images}}").stdout.decode()
    assert out.split()[0] == daemon.driver
    info = daemon.cli("info").stdout.decode()
    assert f"Storage Driver: {daemon.driver}" in info


# --- the real docker CLI against Dockyard -----------------------------------


def test_docker_cli_version_info(daemon):
    out = daemon.docker("version", "--format", "{{.Server.APIVersion}}").stdout.decode()
    assert out.strip() == "1.41"
    info = daemon.docker("info").stdout.decode()
    assert f"Storage Driver: {daemon.driver}" in info


def test_docker_cli_image_commands(daemon, busybox_tar, tmp_path):
    iid = import_busybox(daemon, busybox_tar, "dcli:1", cli="docker")
    out = daemon.docker("images", "dcli").stdout.decode().splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:3] == ["dcli", "1", iid[7:19]]
    daemon.docker("tag", "dcli:1", "dcli:2")
    ids = daemon.docker("images", "-q", "dcli").stdout.decode().split()
    assert ids == [iid[7:19]] * 2  # docker prints the ID once per tag
    insp = json.loads(daemon.docker("inspect", "dcli:2").stdout)
    assert insp[0]["Id"] == iid and sorted(insp[0]["RepoTags"]) == ["dcli:1", "dcli:2"]
    hist = daemon.docker("history", "dcli:1").stdout.decode().splitlines()
    assert hist[0].split()[0] == "IMAGE" and hist[1].startswith(iid[7:19])
    saved = tmp_path / "d.tar"
    daemon.docker("save", "-o", str(saved), "dcli:1")
    assert daemon.docker("rmi", "dcli:1").stdout.decode().strip() == "Untagged: dcli:1"
    out = daemon.docker("rmi", "dcli:2").stdout.decode().splitlines()
    assert out == ["Untagged: dcli:2", f"Deleted: {iid}"]
    out = daemon.docker("load", "-i", str(saved)).stdout.decode()
    assert "Loaded image: dcli:1" in out
    r = daemon.docker("rmi", "dcli:nope", check=False)
    assert r.returncode == 1
    # docker 20.10's CLI turns the daemon's 404 into its own wording
    assert r.stderr.decode().strip() == "Error: No such image: dcli:nope"


@pytest.mark.dockerd
def test_save_load_with_real_dockerd(daemon, ref_dockerd, busybox_tar, tmp_path):
    """Dockyard's save loads into dockerd, and dockerd's save loads into Dockyard,
    keeping the image ID."""
    ref_iid = ref_dockerd.docker("import", str(busybox_tar), "fromdocker:1").stdout.decode().strip()
    ref_tar = tmp_path / "from-docker.tar"
    ref_dockerd.docker("save", "-o", str(ref_tar), "fromdocker:1")
    daemon.cli("load", "-i", str(ref_tar))
    assert daemon.client().get_json("/images/fromdocker:1/json")["Id"] == ref_iid

    our_iid = import_busybox(daemon, busybox_tar, "fromdockyard:1")
    our_tar = tmp_path / "from-dockyard.tar"
    daemon.cli("save", "-o", str(our_tar), "fromdockyard:1")
    out = ref_dockerd.docker("load", "-i", str(our_tar)).stdout.decode()
    assert "Loaded image: fromdockyard:1" in out
    insp = json.loads(ref_dockerd.docker("inspect", "fromdockyard:1").stdout)
    assert insp[0]["Id"] == our_iid



def _same_table(a: str, b: str, header: bool = True) -> None:
    """Tables equal but for the relative-time column, which may tick between runs
    (and so change that column's width), and for the order of one image's rows
    (docker's CLI walks a Go map there; without a header, the first line too)."""
    import re

    if "ago" not in a + b:
        al, bl = a.splitlines(), b.splitlines()
        n = 1 if header else 0
        assert al[:n] + sorted(al[n:]) == bl[:n] + sorted(bl[n:]), (a, b)
        return
    rows = []
    for text in (a, b):
        lines = text.splitlines()
        cells = [re.split(r"\s{2,}", line.rstrip()) for line in lines]
        cells = [[("<time>" if "ago" in c else c) for c in row] for row in cells]
        rows.append(cells[:1] + sorted(cells[1:]))
    assert rows[0] == rows[1], (a, b)


def test_tables_match_docker_cli(daemon, busybox_tar):
    """Our CLI prints the same tables as the docker CLI against the same daemon."""
    iid = import_busybox(daemon, busybox_tar, "golden/one:1")
    daemon.cli("tag", "golden/one:1", "golden/two:latest")
    daemon.cli("import", "-m", "second", str(busybox_tar), "golden/three:x")
    for args in (["images"], ["images", "golden/one"], ["images", "--no-trunc"],
                 ["images", "-a"], ["images", "--digests"], ["history", "golden/one:1"],
                 ["history", "--no-trunc", "golden/one:1"], ["images", "-q"],
                 ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                 ["images", "--format", "table {{.ID}}\t{{.Size}}"],
                 ["images", "--filter", "reference=golden/*"],
                 ["image", "ls", "--filter", "dangling=false", "-q"],
                 ["inspect", "--format", "{{.Id}} {{json .RootFS}}", "golden/one:1"],
                 ["system", "df"]):
        ours = daemon.cli(*args).stdout.decode()
        theirs = daemon.docker(*args).stdout.decode()
        fmt = args[args.index("--format") + 1] if "--format" in args else "table"
        _same_table(ours, theirs, header=fmt.startswith("table") and "-q" not in args)
    assert iid


def test_image_filters(daemon, busybox_tar):
    a = import_busybox(daemon, busybox_tar, "filt/a:1")
    daemon.cli("import", "-c", "LABEL tier=gold", str(busybox_tar), "filt/b:1")
    c = daemon.client()

    def ids(f: dict) -> set:
        return {i["Id"] for i in c.get_json("/images/json", {"filters": json.dumps(f)})}

    gold = ids({"label": ["tier=gold"]})
    assert len(gold) == 1 and a not in gold
    assert a in ids({"reference": ["filt/a"]})
    b = next(iter(gold))
    assert a in ids({"before": [b]}) and a not in ids({"since": [b]})
    assert b in ids({"since": [a]}) and b not in ids({"before": [a]})
    assert a not in ids({"dangling": ["true"]})
    with pytest.raises(APIError) as e:
        ids({"bogus": ["1"]})
    assert e.value.status == 400 and e.value.message == "invalid filter 'bogus'"


def test_load_bare_oci_layout(daemon, busybox_tar, tmp_path):
    """An OCI image layout without docker's manifest.json loads by its annotations."""
    iid = import_busybox(daemon, busybox_tar, "ocilayout:1")
    saved = tmp_path / "s.tar"
    daemon.cli("save", "-o", str(saved), "ocilayout:1")
    daemon.cli("rmi", "ocilayout:1")
    bare = tmp_path / "oci.tar"
    with tarfile.open(saved) as src, tarfile.open(bare, "w") as dst:
        for m in src.getmembers():
            if m.name != "manifest.json":
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    out = daemon.cli("load", "-i", str(bare)).stdout.decode()
    assert out.strip() == "Loaded image: ocilayout:1"
    assert daemon.client().get_json("/images/ocilayout:1/json")["Id"] == iid


def test_load_of_a_chain_deeper_than_dockerd_takes(daemon, tmp_path):
    """`docker load` of an image with 126 layers: dockerd's "max depth
    exceeded", and no image registered."""
    import hashlib
    import io
    import json as _json
    import tarfile

    def tar_bytes(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, data in files.items():
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        return buf.getvalue()

    layers = [tar_bytes({f"f{i}": str(i).encode()}) for i in range(126)]
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    cfg = _json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    files = {cfg_name: cfg}
    for i, x in enumerate(layers):
        files[f"l{i}/layer.tar"] = x
    files["manifest.json"] = _json.dumps([{"Config": cfg_name, "RepoTags": ["deep:v1"],
                                           "Layers": [f"l{i}/layer.tar" for i in range(126)]}]
                                         ).encode()
    archive = tmp_path / "deep.tar"
    archive.write_bytes(tar_bytes(files))
    r = daemon.docker("load", "-i", str(archive), check=False)
    assert r.returncode == 1 and b"max depth exceeded" in r.stderr, r
    assert daemon.docker("images", "-q", "deep").stdout == b""
