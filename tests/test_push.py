"""Push through the Python API to Debian's docker-registry: the image keeps
its ID (and its digest when the blobs are the pulled ones), blobs already
there are skipped or mounted across repositories, a pulled layer goes to
another registry as the bytes it was pulled as, and a real dockerd pulls
what was pushed."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest
from registries import (Layer, build_image, busybox_layer, files_layer, push_built, push_image,
                        sha256_digest)

from conftest import NO_NETWORK, unmount_all
from dockyard import Engine
from dockyard.distribution import RegistryOptions
from dockyard.distribution.auth import AuthConfig
from dockyard.errors import ImageNotFound, RegistryError, Unauthorized
from dockyard.store.check import check_store

ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


@pytest.fixture
def engine(tmp_path):
    eng = Engine(tmp_path / "root", "overlay", exec_root=tmp_path / "exec", network_options=NO_NETWORK,
                 registry_options=RegistryOptions())
    try:
        yield eng
    finally:
        eng.close()
        unmount_all(tmp_path)


def statuses(msgs: list[dict]) -> list[str]:
    return [f"{m['id']}: {m['status']}" if m.get("id") else m.get("status", "")
            for m in msgs if "aux" not in m and "current" not in (m.get("progressDetail") or {})]


def test_push_round_trip(engine, registry, busybox_tar, ref_dockerd):
    name = f"{registry.host}/pushed/busybox"
    img = engine.import_image(str(busybox_tar), repo=name, tag="v1")
    msgs: list[dict] = []
    out = engine.push(name, "v1", progress=msgs.append)
    digest = out[0]["Digest"]
    short = img.config["rootfs"]["diff_ids"][0][7:19]
    assert statuses(msgs) == [
        f"The push refers to repository [{name}]", f"{short}: Preparing", f"{short}: Pushed",
        f"v1: digest: {digest} size: {out[0]['Size']}"]
    assert msgs[-1]["aux"] == out[0]
    # What the registry holds: a schema2 manifest naming our config, by our digest.
    r = registry.client().get_manifest("pushed/busybox", "v1")
    manifest = json.loads(r.body)
    assert r.headers["Docker-Content-Digest"] == digest
    assert manifest["config"]["digest"] == img.id
    assert engine.get_image(name + ":v1").repo_digests == [f"{name}@{digest}"]

    # Pushed again: nothing is uploaded.
    msgs.clear()
    engine.push(name, "v1", progress=msgs.append)
    assert f"{short}: Layer already exists" in statuses(msgs)

    # Another repository of the same registry: the blob is mounted, not sent.
    engine.tag_image(img.id, f"{registry.host}/other/busybox", "x")
    msgs.clear()
    engine.push(f"{registry.host}/other/busybox", progress=msgs.append)
    assert f"{short}: Mounted from pushed/busybox" in statuses(msgs)

    # Pulled back from scratch: the same image.
    engine.remove_image(img.id, force=True)
    back = engine.pull(f"{name}:v1")[0]
    assert back.id == img.id
    # A real dockerd pulls it too, with the same ID.
    ref_dockerd.docker("pull", f"{name}:v1")
    got = ref_dockerd.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:v1")
    assert got.stdout.decode().strip() == img.id
    ref_dockerd.docker("rmi", f"{name}:v1")


def test_pulled_image_keeps_its_digest(engine, registry, sample_image):
    img = engine.pull(sample_image.ref)[0]
    target = f"{registry.host}/copied/sample"
    engine.tag_image(img.id, target, "latest")
    msgs: list[dict] = []
    out = engine.push(target, progress=msgs.append)
    # Every layer mounted from test/sample; the manifest is byte for byte the same.
    assert sum("Mounted from test/sample" in s for s in statuses(msgs)) == 3
    assert out[0]["Digest"] == sample_image.manifest_digest


def test_push_errors(engine, registry, registry_factory, busybox_tar):
    with pytest.raises(ImageNotFound, match="An image does not exist locally with the tag: "
                       f"{registry.host}/nothing/here"):
        engine.push(f"{registry.host}/nothing/here")
    reg = registry_factory(auth="htpasswd", users={"alice": "secret"})
    name = f"{reg.host}/team/app"
    engine.import_image(str(busybox_tar), repo=name, tag="v1")
    with pytest.raises((Unauthorized, RegistryError)):
        engine.push(name, "v1")
    out = engine.push(name, "v1", auth=AuthConfig(username="alice", password="secret"))
    m = json.loads(reg.client(("alice", "secret")).get_manifest("team/app", "v1").body)
    assert m["config"]["digest"] == engine.get_image(name + ":v1").id
    assert out[0]["Tag"] == "v1"


def test_push_with_token_auth(engine, registry_factory, busybox_tar):
    reg = registry_factory(auth="token", users={"bob": "pw"})
    base = push_image(reg, "base/img", "v1", [busybox_layer()])
    auth = AuthConfig(username="bob", password="pw")
    img = engine.pull(base.ref, auth=auth)[0]
    engine.tag_image(img.id, f"{reg.host}/bob/img", "v2")
    msgs: list[dict] = []
    out = engine.push(f"{reg.host}/bob/img", "v2", auth=auth, progress=msgs.append)
    # The token covered a pull of the source repository, so the blob was mounted.
    assert any("Mounted from base/img" in s for s in statuses(msgs))
    assert out[0]["Digest"] == base.manifest_digest


def test_expired_token_is_renewed(engine, registry_factory):
    """A token that stops working mid-pull (tokens expire) is fetched again."""
    reg = registry_factory(auth="token", users={"eve": "pw"})
    image = push_image(reg, "team/tok", "v1", [busybox_layer()])
    from dockyard.distribution.client import Session

    auth = AuthConfig(username="eve", password="pw")
    s = Session(reg.host, engine.registry_options, auth)
    s.authorize(["repository:team/tok:pull"])
    s.authorization = "Bearer expired"  # as if it had run out
    with s.request("GET", "/v2/team/tok/manifests/v1",
                   {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}) as r:
        assert r.status == 200
        r.read()
    assert s.authorization != "Bearer expired"
    assert engine.pull(image.ref, auth=auth)[0].id == image.image_id


def test_pull_what_dockerd_pushed(engine, registry, busybox_tar, ref_dockerd):
    """An image made and pushed by a real dockerd comes back with its ID."""
    name = f"{registry.host}/fromdockerd/busybox:d1"
    ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), name)
    ref_dockerd.docker("push", name)
    want = ref_dockerd.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    digest = ref_dockerd.docker("image", "inspect", "-f", "{{index .RepoDigests 0}}",
                                name).stdout.decode().strip()
    ref_dockerd.docker("rmi", name)
    img = engine.pull(name)[0]
    assert img.id == want
    assert img.repo_digests == [digest]
    assert img.config["config"]["Cmd"] == ["sh"]


def _level1_gzip(tar: bytes) -> Layer:
    """gzip as no engine would write it again (level 1): a push that sends
    these digests sent the pulled bytes, not a recompression."""
    blob = gzip.compress(tar, compresslevel=1, mtime=0)
    return Layer(blob, sha256_digest(blob), sha256_digest(tar), len(blob))


def _zstd(tar: bytes) -> Layer:
    blob = subprocess.run(["zstd", "-q", "-c", "-3"], input=tar, stdout=subprocess.PIPE,
                          check=True).stdout
    return Layer(blob, sha256_digest(blob), sha256_digest(tar), len(blob))


def test_pulled_blobs_are_pushed_as_they_are(engine, registry, registry_factory):
    """A pulled image pushed to a registry without its blobs sends the kept
    compressed bytes (gzip and zstd, with their media types); a damaged kept
    blob is compressed again instead; rmi takes the kept blobs with it."""
    layers = [_level1_gzip(busybox_layer()), _zstd(files_layer({"etc/z": "zstd"}))]
    image = build_image("kept/src", "v1", layers, media="oci")
    m = json.loads(image.manifest)
    m["layers"][1]["mediaType"] = ZSTD
    raw = json.dumps(m, indent=3).encode()
    image.manifests = {sha256_digest(raw): (image.manifest_type, raw)}
    image.manifest_digest = sha256_digest(raw)
    push_built(registry, image)
    img = engine.pull(image.ref)[0]
    kept = Path(engine.root) / "layerblobs"
    assert sorted(p.name for p in kept.iterdir()) == sorted(x.digest[7:] for x in layers)
    assert check_store(engine.store, set(), verify=False, grace=0) == []

    target = registry_factory()
    engine.tag_image(img.id, f"{target.host}/copy/img", "v1")
    msgs: list[dict] = []
    engine.push(f"{target.host}/copy/img", "v1", progress=msgs.append)
    assert sum(s.endswith(": Pushed") for s in statuses(msgs)) == 2
    pushed = json.loads(target.client().get_manifest("copy/img", "v1").body)
    assert pushed["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [(x["digest"], x["mediaType"]) for x in pushed["layers"]] == \
        [(layers[0].digest, "application/vnd.oci.image.layer.v1.tar+gzip"),
         (layers[1].digest, ZSTD)]
    assert target.client().get_blob("copy/img", layers[1].digest) == layers[1].blob

    # Damaged (same size, one byte flipped): never uploaded, recompressed.
    path = kept / layers[0].digest[7:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    other = registry_factory()
    engine.tag_image(img.id, f"{other.host}/copy/img", "v1")
    engine.push(f"{other.host}/copy/img", "v1")
    pushed = json.loads(other.client().get_manifest("copy/img", "v1").body)
    recompressed = pushed["layers"][0]["digest"]
    assert recompressed != layers[0].digest
    blob = other.client().get_blob("copy/img", recompressed)
    assert sha256_digest(blob) == recompressed
    assert sha256_digest(gzip.decompress(blob)) == layers[0].diff_id
    assert pushed["layers"][1]["digest"] == layers[1].digest
    # The damaged copy is gone; the one compressed for that push is kept.
    assert sorted(p.name for p in kept.iterdir()) == sorted([recompressed[7:],
                                                             layers[1].digest[7:]])

    engine.remove_image(img.id, force=True)
    assert list(kept.iterdir()) == []


def test_compressed_blob_is_kept_for_the_next_push(engine, registry, registry_factory,
                                                   busybox_tar):
    """A layer compressed for one push is kept: the next push to another
    registry sends those bytes (progress knows their size up front)."""
    name = f"{registry.host}/kept/first"
    img = engine.import_image(str(busybox_tar), repo=name, tag="v1")
    short = img.config["rootfs"]["diff_ids"][0][7:19]

    def first_total(msgs: list[dict]) -> int:
        return next(m["progressDetail"]["total"] for m in msgs
                    if m.get("status") == "Pushing" and m.get("id") == short)

    msgs: list[dict] = []
    engine.push(name, "v1", progress=msgs.append)
    assert first_total(msgs) == 0  # compressed as it went: size unknown
    digest = json.loads(registry.client().get_manifest("kept/first", "v1").body)["layers"][0]
    kept = Path(engine.root) / "layerblobs"
    assert [p.name for p in kept.iterdir()] == [digest["digest"][7:]]

    other = registry_factory()
    engine.tag_image(img.id, f"{other.host}/kept/second", "v1")
    msgs.clear()
    engine.push(f"{other.host}/kept/second", "v1", progress=msgs.append)
    assert first_total(msgs) == digest["size"]
    again = json.loads(other.client().get_manifest("kept/second", "v1").body)["layers"][0]
    assert again == digest
