"""Pull through the Python API against real and misbehaving registries:
manifests of every kind, layers that exist already, shared and concurrent
downloads, and failures that must leave the store as it was."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from registries import busybox_layer, files_layer, push_image

from conftest import NO_NETWORK, assert_no_mounts_left, unmount_all
from dockyard import Engine
from dockyard.distribution import RegistryOptions
from dockyard.distribution.auth import AuthConfig
from dockyard.errors import BlobCorrupt, RegistryError, RegistryNotFound, Unauthorized


def _engine(base: Path, driver: str, **opts) -> Engine:
    return Engine(base / "root", driver, exec_root=base / "exec", network_options=NO_NETWORK,
                  registry_options=RegistryOptions(**opts))


@pytest.fixture(params=["overlay", "vfs"])
def engine(tmp_path, request):
    eng = _engine(tmp_path, request.param)
    try:
        yield eng
    finally:
        eng.close()
        assert_no_mounts_left(tmp_path)


@pytest.fixture
def overlay_engine(tmp_path):
    eng = _engine(tmp_path, "overlay", timeout=5, retries=2)
    try:
        yield eng
    finally:
        eng.close()
        unmount_all(tmp_path)


def store_state(eng: Engine) -> tuple:
    """What a failed pull must not change: rows and driver directories."""
    rows = tuple(tuple(r) for t in ("images", "layers", "refs")
                 for r in eng.db.query(f"SELECT * FROM {t} ORDER BY 1"))
    return rows, tuple(sorted(eng.driver.list_ids()))


def read_merged(eng: Engine, image_id: str, paths: list[str]) -> dict[str, bytes | None]:
    """Read files from the image's merged root (the storage driver's view)."""
    img = eng.images.get(image_id)
    top = eng.layers.get(img.top_layer)
    root = eng.driver.get(top.cache_id)
    try:
        out: dict[str, bytes | None] = {}
        for p in paths:
            f = Path(root) / p
            out[p] = f.read_bytes() if f.exists() else None
        return out
    finally:
        eng.driver.put(top.cache_id)


def test_pull_by_tag_applies_union_rules(engine, sample_image):
    msgs: list[dict] = []
    imgs = engine.pull(f"{sample_image.host}/test/sample", "latest", progress=msgs.append)
    img = imgs[0]
    assert img.id == sample_image.image_id
    assert [lay.diff_id for lay in engine.layers.chain(img.top_layer)] == sample_image.diff_ids
    assert f"{sample_image.host}/test/sample:latest" in img.repo_tags
    assert img.repo_digests == [f"{sample_image.host}/test/sample@{sample_image.manifest_digest}"]
    files = read_merged(engine, img.id, ["etc/motd", "etc/hello", "data/a", "data/c",
                                         "bin/busybox"])
    assert files["etc/motd"] is None and files["data/a"] is None
    assert files["etc/hello"] == b"hello\n" and files["data/c"] == b"c\n"
    assert files["bin/busybox"]
    statuses = [m.get("status") for m in msgs]
    assert statuses[0] == "Pulling from test/sample"
    assert statuses.count("Pull complete") == 3
    assert statuses[-2:] == [f"Digest: {sample_image.manifest_digest}",
                             f"Status: Downloaded newer image for {sample_image.ref}"]
    msgs.clear()
    engine.pull(sample_image.ref, progress=msgs.append)
    assert msgs[-1]["status"] == f"Status: Image is up to date for {sample_image.ref}"


def test_pull_by_digest_and_already_exists(overlay_engine, registry, busybox_image):
    eng = overlay_engine
    img = eng.pull(busybox_image.digest_ref)[0]
    assert img.id == busybox_image.image_id
    assert img.repo_tags == []  # pulled by digest: no tag
    # A second image on the same base: its first layer is not downloaded again.
    other = push_image(registry, "test/on-busybox", "v1",
                       [busybox_layer(), files_layer({"etc/extra": "x\n"})])
    msgs: list[dict] = []
    eng.pull(other.ref, progress=msgs.append)
    by_id = {m["id"]: m["status"] for m in msgs if m.get("id") and m["status"] in (
        "Already exists", "Pulling fs layer")}
    assert by_id == {other.layers[0].digest[7:19]: "Already exists",
                     other.layers[1].digest[7:19]: "Pulling fs layer"}
    # both images share the base layer's directory
    assert len(eng.layers.chain(eng.get_image(other.ref).top_layer)) == 2
    assert eng.db.one("SELECT COUNT(*) AS n FROM layers")["n"] == 2


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_manifest_list_platforms(overlay_engine, registry, media):
    eng = overlay_engine
    image = push_image(registry, f"test/multi-{media}", "v1", [busybox_layer()], media=media,
                       index=True)
    amd = eng.pull(image.ref)[0]
    assert amd.id == image.image_id
    assert amd.config["architecture"] == "amd64"
    assert amd.repo_digests == [f"{image.host}/test/multi-{media}@{image.manifest_digest}"]
    arm = eng.pull(image.ref, platform="linux/arm64")[0]
    assert arm.config["architecture"] == "arm64" and arm.id != amd.id
    with pytest.raises(RegistryNotFound, match="no matching manifest for linux/s390x"):
        eng.pull(image.ref, platform="linux/s390x")


def test_all_tags_and_unknown_names(overlay_engine, registry):
    eng = overlay_engine
    for tag in ("a", "b"):
        push_image(registry, "test/tags", tag, [files_layer({"tag": tag})])
    imgs = eng.pull(f"{registry.host}/test/tags", all_tags=True)
    assert sorted(t for i in imgs for t in i.repo_tags) == [
        f"{registry.host}/test/tags:a", f"{registry.host}/test/tags:b"]
    with pytest.raises(RegistryNotFound, match="manifest for .*/test/tags:nope not found: "
                       "manifest unknown"):
        eng.pull(f"{registry.host}/test/tags:nope")
    with pytest.raises(RegistryError, match="connection refused"):
        eng.pull("127.0.0.1:1/nothing:here")


def test_docker_hub_unreachable_is_one_line(overlay_engine):
    with pytest.raises(RegistryError) as e:
        overlay_engine.pull("busybox")
    msg = str(e.value)
    assert "\n" not in msg and "registry-1.docker.io" in msg


@pytest.mark.parametrize("fault", ["wrong_digest", "truncated", "status500"])
def test_bad_blob_fails_and_changes_nothing(overlay_engine, bad_registry, fault):
    eng = overlay_engine
    ok = bad_registry.serve("t/base", "v1", [busybox_layer()])
    eng.pull(ok.ref)
    before = store_state(eng)
    image = bad_registry.serve("t/bad", "v1", [busybox_layer(), files_layer({"a": "1"}),
                                               files_layer({"b": "2"})],
                               fault=fault, fault_layer=1)
    with pytest.raises((BlobCorrupt, RegistryError)) as e:
        eng.pull(image.ref)
    text = str(e.value)
    if fault == "wrong_digest":
        assert "verification failed" in text or "failed to register layer" in text
    elif fault == "truncated":
        assert "unexpected EOF" in text
    else:
        assert "500" in text
    assert store_state(eng) == before
    assert not list((Path(eng.root) / "tmp").iterdir())
    # Kept blobs: the stored layer's only, no temporary of the failed one.
    assert [p.name for p in (Path(eng.root) / "layerblobs").iterdir()] == [ok.layers[0].digest[7:]]


def test_flaky_blob_is_retried(overlay_engine, bad_registry):
    image = bad_registry.serve("t/flaky", "v1", [busybox_layer()], fault="flaky")
    msgs: list[dict] = []
    img = overlay_engine.pull(image.ref, progress=msgs.append)[0]
    assert img.id == image.image_id
    assert bad_registry.blob_gets(image.layers[0].digest) == 2
    assert any(m["status"].startswith("Retrying in") for m in msgs)


def test_stalled_registry_times_out(tmp_path, bad_registry):
    eng = _engine(tmp_path, "overlay", timeout=1, retries=1)
    try:
        image = bad_registry.serve("t/slow", "v1", [busybox_layer()], fault="slow", stall=4)
        t0 = time.monotonic()
        with pytest.raises(RegistryError, match="timed out"):
            eng.pull(image.ref)
        assert time.monotonic() - t0 < 4
        assert eng.db.one("SELECT COUNT(*) AS n FROM layers")["n"] == 0
    finally:
        eng.close()


def test_concurrent_pulls_share_layer_downloads(overlay_engine, bad_registry):
    eng = overlay_engine
    base = busybox_layer()
    a = bad_registry.serve("t/a", "v1", [base, files_layer({"a": "1"})])
    b = bad_registry.serve("t/b", "v1", [base, files_layer({"b": "2"})])
    # Slow the shared layer so that both pulls want it at once.
    bad_registry.set_fault(a.layers[0].digest, "slow", stall=1.0)
    results: dict[str, object] = {}

    def run(img) -> None:
        try:
            results[img.repo] = eng.pull(img.ref)[0].id
        except Exception as e:  # noqa: BLE001
            results[img.repo] = e

    threads = [threading.Thread(target=run, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {"t/a": a.image_id, "t/b": b.image_id}
    assert bad_registry.blob_gets(a.layers[0].digest) == 1
    assert eng.db.one("SELECT COUNT(*) AS n FROM layers")["n"] == 3


def test_htpasswd_and_token_auth(tmp_path, registry_factory):
    for kind in ("htpasswd", "token"):
        reg = registry_factory(auth=kind, users={"alice": "secret"})
        image = push_image(reg, "team/app", "v1", [busybox_layer()])
        eng = _engine(tmp_path / kind, "overlay")
        try:
            with pytest.raises((Unauthorized, RegistryNotFound)):
                eng.pull(image.ref)
            with pytest.raises(Unauthorized):
                eng.pull(image.ref, auth=AuthConfig(username="alice", password="wrong"))
            img = eng.pull(image.ref, auth=AuthConfig(username="alice", password="secret"))[0]
            assert img.id == image.image_id
            assert eng.login(AuthConfig(username="alice", password="secret",
                                        serveraddress=reg.host))["Status"] == "Login Succeeded"
            with pytest.raises(Unauthorized):
                eng.login(AuthConfig(username="alice", password="nope", serveraddress=reg.host))
        finally:
            eng.close()
            unmount_all(tmp_path / kind)


def test_tls_registry_verifies_with_certs_d(tmp_path, registry_factory):
    reg = registry_factory(tls=True)
    image = push_image(reg, "sec/app", "v1", [busybox_layer()])
    strict = _engine(tmp_path / "strict", "overlay", loopback_insecure=False,
                     certs_dir=str(tmp_path / "nocerts"))
    try:
        with pytest.raises(RegistryError, match="failed to verify certificate"):
            strict.pull(image.ref)
    finally:
        strict.close()
    certs = reg.certs_dir(tmp_path / "certs.d")
    good = _engine(tmp_path / "good", "overlay", loopback_insecure=False, certs_dir=str(certs))
    try:
        assert good.pull(image.ref)[0].id == image.image_id
    finally:
        good.close()
        unmount_all(tmp_path)


def test_interrupted_pull_keeps_finished_layers(overlay_engine, bad_registry):
    eng = overlay_engine
    layers = [busybox_layer(), files_layer({"a": "1"}), files_layer({"b": "2"})]
    image = bad_registry.serve("t/int", "v1", layers, fault="slow", fault_layer=2, stall=30)
    from dockyard.distribution.progress import ClientGone
    from dockyard.distribution.pull import PullCancelled

    seen = threading.Event()

    def progress(m: dict) -> None:
        if m.get("status") == "Pull complete" and m.get("id") == image.layers[1].digest[7:19]:
            seen.set()
        if seen.is_set() and m.get("status") == "Downloading":
            raise PullCancelled("client went away")

    with pytest.raises(ClientGone):  # what a failing progress sink becomes
        eng.pull(image.ref, progress=progress)
    assert eng.db.one("SELECT COUNT(*) AS n FROM layers")["n"] == 2
    assert not eng.inflight_layers.slots
    bad_registry.faults.clear()
    msgs: list[dict] = []
    eng.pull(image.ref, progress=msgs.append)
    assert [m["status"] for m in msgs if m.get("id") in
            (image.layers[0].digest[7:19], image.layers[1].digest[7:19])
            ] == ["Already exists", "Already exists"]
    assert bad_registry.blob_gets(image.layers[0].digest) == 1


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def test_kill_daemon_mid_pull_then_pull_again(tmp_path, bad_registry):
    """kill -9 of a daemon in the middle of a pull: the restarted one has a
    consistent store, and the next pull reuses the layers that completed."""
    import signal
    import subprocess
    import sys

    from conftest import Daemon

    layers = [busybox_layer(), files_layer({"a": "1"}), files_layer({"b": "2"})]
    image = bad_registry.serve("t/kill", "v1", layers, fault="slow", fault_layer=2, stall=60)
    d = Daemon(tmp_path, "overlay")
    d.start()
    try:
        p = subprocess.Popen([sys.executable, "-m", "dockyard", "pull", image.ref],
                             env=d.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        kept = d.root / "layerblobs"
        # the stalled layer's blob, kept as it arrives (the others' are renamed
        # meanwhile: os.scandir's entries may be gone when asked their size)
        while not [p for p in kept.glob("*.tmp") if _size(p)]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        p.wait(10)
        unmount_all(tmp_path)
        bad_registry.faults.clear()
        d.start()
        r = d.cli("pull", image.ref)
        out = r.stdout.decode()
        assert f"{image.layers[0].digest[7:19]}: Already exists" in out
        assert bad_registry.blob_gets(image.layers[0].digest) == 1
        assert d.cli("images", "-q", image.ref).stdout.decode().strip() == image.image_id[7:19]
        # The interrupted blob's temporary went at start; every layer's blob is kept.
        assert sorted(p.name for p in kept.iterdir()) == sorted(x.digest[7:]
                                                                for x in image.layers)
    finally:
        d.stop()
        unmount_all(tmp_path)


def test_search_v1_api_and_filters(overlay_engine, bad_registry):
    bad_registry.serve("lib/alpha", "v1", [files_layer({"a": "1"})])
    bad_registry.serve("lib/beta", "v1", [files_layer({"b": "1"})])
    bad_registry.search_index["lib/beta"].update(star_count=7, is_official=True)
    eng = overlay_engine
    hits = eng.search(f"{bad_registry.host}/lib", 25, {})
    assert [h["name"] for h in hits] == ["lib/alpha", "lib/beta"]
    assert hits[0]["description"] == "lib/alpha for tests"
    assert bad_registry.counts["GET /v2/_catalog"] == 0  # the v1 API answered
    assert [h["name"] for h in eng.search(f"{bad_registry.host}/lib", 25,
                                          {"stars": ["5"]})] == ["lib/beta"]
    assert [h["name"] for h in eng.search(f"{bad_registry.host}/lib", 25,
                                          {"is-official": ["false"]})] == ["lib/alpha"]
    assert len(eng.search(f"{bad_registry.host}/lib", 1, {})) == 1
    from dockyard.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="limit 101 is outside the range"):
        eng.search(f"{bad_registry.host}/lib", 101, {})
    with pytest.raises(InvalidParameter, match="invalid filter 'nope'"):
        eng.search(f"{bad_registry.host}/lib", 5, {"nope": ["1"]})


def test_insecure_registry_option(tmp_path, registry_factory):
    """`--insecure-registry` (a name or a CIDR): HTTPS without verification."""
    reg = registry_factory(tls=True)
    image = push_image(reg, "sec/app", "v1", [busybox_layer()])
    for entry in (reg.host, "127.0.0.0/8"):
        eng = _engine(tmp_path / entry.replace("/", "_"), "overlay", loopback_insecure=False,
                      insecure_registries=[entry], certs_dir=str(tmp_path / "none"))
        try:
            assert eng.pull(image.ref)[0].id == image.image_id
        finally:
            eng.close()
    unmount_all(tmp_path)


def test_credentials_files(tmp_path, monkeypatch):
    """Dockyard's config.json first, then docker's (same format)."""
    import base64
    import json

    from dockyard.distribution import credentials

    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "dy"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "reg.example:5000": {"auth": base64.b64encode(b"d:dpw").decode()}}}))
    assert credentials.lookup("docker.io").credentials() == ("hub", "pw")
    assert credentials.lookup("reg.example:5000").credentials() == ("d", "dpw")
    credentials.store("reg.example:5000", AuthConfig(username="me", password="mine"))
    assert credentials.lookup("https://reg.example:5000/v2/").credentials() == ("me", "mine")
    assert credentials.erase("reg.example:5000")
    assert credentials.lookup("reg.example:5000").credentials() == ("d", "dpw")
    assert not credentials.erase("other:1")
    assert credentials.lookup("nowhere:1").credentials() is None


def test_layer_registered_meanwhile_by_an_import(overlay_engine, bad_registry, tmp_path):
    """A base layer that an import registers while the pull is still fetching
    it: the pull drops its copy and hangs the next layer on the stored one."""
    eng = overlay_engine
    base = busybox_layer()
    image = bad_registry.serve("t/race", "v1", [base, files_layer({"etc/race": "won\n"})],
                               fault="slow", fault_layer=0, stall=2)
    result: dict[str, object] = {}

    def pull() -> None:
        try:
            result["img"] = eng.pull(image.ref)[0]
        except Exception as e:  # noqa: BLE001
            result["err"] = e

    t = threading.Thread(target=pull)
    t.start()
    deadline = time.monotonic() + 10
    while bad_registry.blob_gets(image.layers[0].digest) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    tar = tmp_path / "base.tar"
    tar.write_bytes(base)
    imported = eng.import_image(str(tar))  # same diff ID: registers the chain first
    t.join(30)
    assert "err" not in result, result.get("err")
    img = result["img"]
    chain = eng.layers.chain(img.top_layer)
    assert chain[0].chain_id == eng.layers.chain(imported.top_layer)[0].chain_id
    files = read_merged(eng, img.id, ["etc/race", "bin/busybox"])
    assert files["etc/race"] == b"won\n" and files["bin/busybox"]


def test_interrupted_pull_does_not_fail_a_waiting_one(overlay_engine, bad_registry):
    """Pull B waits for a layer pull A is fetching; A's client goes away: B
    fetches the layer itself instead of failing."""
    from dockyard.distribution.progress import ClientGone

    eng = overlay_engine
    shared = busybox_layer()
    a = bad_registry.serve("t/ia", "v1", [shared, files_layer({"a": "1"})])
    b = bad_registry.serve("t/ib", "v1", [shared, files_layer({"b": "2"})])
    bad_registry.set_fault(a.layers[0].digest, "slow", stall=1.5)
    seen: list[int] = []

    def a_progress(m: dict) -> None:
        if m.get("status") == "Downloading" and m.get("id") == a.layers[0].digest[7:19]:
            seen.append(1)
            if len(seen) > 1:  # after the stall: A's client is gone
                raise ClientGone("gone")

    results: dict[str, object] = {}

    def run(name: str, img, progress) -> None:
        try:
            results[name] = eng.pull(img.ref, progress=progress)[0].id
        except Exception as e:  # noqa: BLE001
            results[name] = e

    ta = threading.Thread(target=run, args=("a", a, a_progress))
    ta.start()
    deadline = time.monotonic() + 10
    while not seen:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    b_msgs: list[dict] = []
    tb = threading.Thread(target=run, args=("b", b, b_msgs.append))
    tb.start()
    ta.join(30)
    tb.join(30)
    assert isinstance(results["a"], ClientGone)
    assert results["b"] == b.image_id
    assert any(m.get("status") == "Waiting" for m in b_msgs)
    assert not eng.inflight_layers.slots


def test_too_deep_and_malformed_images_are_refused(overlay_engine, registry):
    """dockerd refuses more than 125 layers ("max depth exceeded"), before
    any download; a config that isn't JSON is a clear error, not a parser's
    traceback. The store is left as it was."""
    import json as _json

    from registries import build_image, canonical_json, push_built, sha256_digest

    eng = overlay_engine
    before = store_state(eng)
    deep = push_image(registry, "bad/deep", "v1",
                      [files_layer({f"f{i}": str(i)}) for i in range(126)])
    with pytest.raises(RegistryError, match="^max depth exceeded$"):
        eng.pull(f"{registry.host}/bad/deep", "v1")
    assert store_state(eng) == before

    img = build_image("bad/config", "v1", [busybox_layer()])
    raw_cfg = b'{"architecture": "amd64", "os": "linux", "rootfs": '  # cut short
    (_, old_raw), = img.manifests.values()
    m = _json.loads(old_raw)
    m["config"] = dict(m["config"], size=len(raw_cfg), digest=sha256_digest(raw_cfg))
    raw = canonical_json(m)
    img.blobs[sha256_digest(raw_cfg)] = raw_cfg
    img.manifests = {sha256_digest(raw): (img.manifest_type, raw)}
    img.manifest_digest = sha256_digest(raw)
    push_built(registry, img)
    with pytest.raises(RegistryError, match="bad/config:v1: invalid image config: "):
        eng.pull(f"{registry.host}/bad/config", "v1")
    assert store_state(eng) == before
