"""`trust sign [--local]`: a tag signed into every role we hold a key for; a
new repository is initialised first, and a tag not signed yet is pushed
through the daemon and signed with the digest the push reports."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..common import call, client, fail
from .shared import (add_staged_signer, arity, notary_error, open_repo, parse_ref, released,
                     released_signatures, root_key_id, show_warnings, tag_of, username)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...distribution.trust.repository import Repository
    from ...reference import Reference


def or_generate_key(repo: Repository, role: str) -> Any:
    """docker's getOrGenerateNotaryKey: the first key (by ID) stored for the role
    (a delegation's under its signer name), else a new one."""
    from ...distribution.trust.keys import PrivateKey

    name = role.removeprefix("targets/")
    ids = repo.keys.ids_for_role(name)
    if ids:
        return repo.keys.get(ids[0]).public
    key = PrivateKey.generate()
    repo.keys.add(key, name)
    return key.public


def local_image_exists(name: str) -> None:
    from ..client import path_quote

    call(lambda: client().get_json(f"/images/{path_quote(name)}/json"))


def sign(args: Optional[List[str]] = typer.Argument(None, metavar="IMAGE:TAG"),
         local: bool = typer.Option(False, "--local", help="Sign a locally tagged image")) -> None:
    """Sign an image"""
    from ...distribution.trust.errors import NoSuchTarget, RepositoryNotExist, TrustError

    [image] = arity("sign", args, "IMAGE:TAG", exactly=1)
    ref = parse_ref(image)
    tag = tag_of(ref)
    if not tag:
        fail("cannot use a digest reference for IMAGE:TAG" if ref.digest
             else f"no tag specified for {image}")
    repo = open_repo(ref)
    # notary warns on each update, and docker's calls update the repository two
    # times here (ListTargets, then the target's lookup), three when signing it
    # in, three in the push path
    try:
        repo.update()
        show_warnings(repo, 2)
    except RepositoryNotExist:
        local_image_exists(image)
        user = username(ref)
        role = f"targets/{user}" if user else "targets"
        try:
            repo.initialize(root_key_id(repo))
            key = or_generate_key(repo, role)
            try:
                add_staged_signer(repo, role, [key])
            except TrustError as e:
                fail(f"could not add signer to repo: {role.removeprefix('targets/')}: {e}")
            repo.publish()
        except (TrustError, OSError) as e:
            fail(notary_error(ref.name, e))
        print("Created signer:", user)
        print("Finished initializing signed repository for", image, flush=True)
        repo = open_repo(ref)
        try:
            repo.update()
            show_warnings(repo)
        except (TrustError, OSError) as e:
            fail(notary_error(ref.name, e))
    except (TrustError, OSError) as e:
        fail(notary_error(ref.name, e))
    target = None
    try:
        target = next(t for role, t in repo.targets_by_name(tag) if released(role))
    except (NoSuchTarget, StopIteration):
        pass
    if target is None or local:
        local_image_exists(image)
        print(f"Signing and pushing trust data for local image {image}, may overwrite remote "
              "trust data", file=sys.stderr, flush=True)
        push_and_sign(ref, tag)
        return
    print("Signing and pushing trust metadata for", image, flush=True)
    try:
        existing = released_signatures(repo.targets_by_name(tag))
        show_warnings(repo, 3)
        repo.add_target(target, repo.signable_roles(target.name))
        row = existing[0] if existing else {"SignedTag": "", "Digest": "", "Signers": []}
        print(f"Existing signatures for tag {row['SignedTag']} digest {row['Digest']} from:\n"
              + ", ".join(sorted(row["Signers"])), flush=True)
        repo.publish()
    except (TrustError, OSError) as e:
        fail(f"failed to sign {ref.name}:{tag}: {e}")
    print(f"Successfully signed {ref.name}:{tag}")


def push_and_sign(ref: Reference, tag: str) -> None:
    """docker's ImagePush + PushTrustedReference: push through the daemon, sign
    the digest and size its aux message reports."""
    import base64

    from ...distribution.trust.errors import RepositoryNotExist, TrustError
    from ...distribution.trust.repository import Target
    from ..client import path_quote
    from ..transfer import stream_progress

    result = stream_progress("POST", f"/images/{path_quote(ref.familiar_name)}/push",
                             {"tag": tag}, str(ref), False)
    digest = str(result.get("Digest", ""))
    if not result.get("Tag") or not digest.startswith("sha256:"):
        fail("no targets found, provide a specific tag in order to sign it")
    target = Target(str(result["Tag"]), {"sha256": base64.b64encode(
        bytes.fromhex(digest[7:])).decode()}, int(result.get("Size", 0)))
    print("Signing and pushing trust metadata", flush=True)
    repo = open_repo(ref)
    try:
        try:
            repo.update()
            show_warnings(repo, 3)
            roles = repo.signable_roles(target.name)
        except RepositoryNotExist:
            repo.initialize(root_key_id(repo))
            print(f'Finished initializing "{ref.name}"', flush=True)
            roles = ["targets"]
        repo.add_target(target, roles)
        repo.publish()
    except (TrustError, OSError) as e:
        fail(notary_error(ref.name, TrustError(f"failed to sign {ref.name}:{tag}: {e}")))
    print(f"Successfully signed {ref.name}:{tag}")
