"""Push through the Python API to Debian's docker-registry: the image keeps
its ID (and its digest when the blobs are the pulled ones), blobs already
there are skipped or mounted across repositories, and a real dockerd pulls
what was pushed."""

from __future__ import annotations

import json

import pytest
from registries import busybox_layer, push_image

from conftest import NO_NETWORK, unmount_all
from dockyard import Engine
from dockyard.distribution import RegistryOptions
from dockyard.distribution.auth import AuthConfig
from dockyard.errors import ImageNotFound, RegistryError, Unauthorized


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
