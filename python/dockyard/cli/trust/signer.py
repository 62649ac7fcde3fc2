"""`trust signer add` and `trust signer remove`: delegations `targets/<name>`
and the keys of `targets/releases`."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..common import fail
from .shared import (NAME_RULE, RELEASES, VALID_NAME, add_staged_signer, arity, confirm,
                     go_os_error, notary_error, open_repo, root_key_id, show_change_warnings,
                     show_warnings)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def signer_add(args: Optional[List[str]] = typer.Argument(
                   None, metavar="NAME REPOSITORY [REPOSITORY...]"),
               key: List[str] = typer.Option([], "--key",
                                             help="Path to the signer's public key file")) -> None:
    """Add a signer"""
    from ...distribution.trust.keys import parse_public_pem

    name, *repos = arity("signer add", args, "OPTIONS NAME REPOSITORY [REPOSITORY...] ",
                         at_least=2)
    if not VALID_NAME.fullmatch(name):
        fail(f'signer name "{name}" {NAME_RULE}')
    if name == "releases":
        fail("releases is a reserved keyword, use a different signer name")
    if not key:
        fail("path to a public key must be provided using the `--key` flag")
    pubs = []
    for path in key:
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 20)
        except OSError as e:
            fail(f"unable to read public key from file: {go_os_error('open', path, e)}")
        try:
            pubs.append(parse_public_pem(raw))
        except ValueError as e:
            fail(f"could not parse public key from file: {path}: {e}")
    failed = []
    for r in repos:
        print(f'Adding signer "{name}" to {r}...', flush=True)
        err = add_signer_to_repo(name, r, pubs)
        if err:
            print(err + "\n", file=sys.stderr, flush=True)
            failed.append(r)
        else:
            print(f"Successfully added signer: {name} to {r}\n", flush=True)
    if failed:
        fail("failed to add signer to: " + ", ".join(failed))


def add_signer_to_repo(name: str, remote: str, pubs: list[Any]) -> str | None:
    """Add the signer to one repository (initialised first if need be); None, or
    the error to print."""
    from ...distribution.trust.errors import RepositoryNotExist, TrustError
    from ...errors import InvalidReference
    from ...reference import parse_normalized

    try:
        ref = parse_normalized(remote)
        repo = open_repo(ref, strict=False)
        repo.update()
        show_warnings(repo)  # docker's ListTargets; its Publish updates (and warns) again
    except InvalidReference as e:
        return str(e)
    except RepositoryNotExist:
        print(f"Initializing signed repository for {remote}...", flush=True)
        try:
            repo.initialize(root_key_id(repo))
        except (TrustError, OSError) as e:
            return notary_error(remote, e)
        print(f'Successfully initialized "{remote}"', flush=True)
    except (TrustError, OSError) as e:
        return notary_error(remote, e)
    try:
        add_staged_signer(repo, f"targets/{name}", pubs)
    except TrustError as e:
        return f"could not add signer to repo: {name}: {e}"
    try:
        show_warnings(repo)
        repo.publish()
    except (TrustError, OSError) as e:
        return str(e)
    return None


def signer_remove(args: Optional[List[str]] = typer.Argument(
                      None, metavar="NAME REPOSITORY [REPOSITORY...]"),
                  force: bool = typer.Option(False, "-f", "--force",
                                             help="Do not prompt for confirmation before "
                                                  "removing the most recent signer")) -> None:
    """Remove a signer"""
    name, *repos = arity("signer remove", args, "[OPTIONS] NAME REPOSITORY [REPOSITORY...]",
                         at_least=2)
    failed = []
    for r in repos:
        print(f'Removing signer "{name}" from {r}...', flush=True)
        err = remove_single_signer(r, name, force)
        if err:
            print(err + "\n", file=sys.stderr, flush=True)
            failed.append(r)
    if failed:
        fail("error removing signer from: " + ", ".join(failed))


def remove_single_signer(remote: str, name: str, force: bool) -> str | None:
    """Remove the signer from one repository; None, or the error to print."""
    from ...distribution.trust.errors import TrustError
    from ...errors import InvalidReference
    from ...reference import parse_normalized

    try:
        ref = parse_normalized(remote)
    except InvalidReference as e:
        return str(e)
    role_name = f"targets/{name}"
    if role_name == RELEASES:
        return "releases is a reserved keyword and cannot be removed"
    try:
        repo = open_repo(ref, strict=False)
    except TrustError as e:
        return str(e)
    try:
        repo.update()
    except (TrustError, OSError) as e:
        return f"error retrieving signers for {remote}: {e}"
    # docker's GetDelegationRoles, ListRoles and Publish each update, and warn
    show_warnings(repo)
    role = next((r for r in repo.delegation_roles() if r.name == role_name), None)
    if role is None:
        return f"no signer {name} for repository {remote}"
    show_warnings(repo)
    sigs = repo.role_signatures(RELEASES)
    if not sigs:
        return "all signed tags are currently revoked, use docker trust sign to fix"
    left = len(sigs) - sum(1 for s in sigs for k in role.keyids if s.get("keyid") == k)
    # As docker 28's maybePromptForSignerRemoval: only a confirmed removal of the
    # last releases signer goes ahead; otherwise (even with --force) nothing changes.
    last = left < repo.role_threshold(RELEASES)
    if not (last and not force and confirm(
            f'The signer "{name}" signed the last released version of {remote}. '
            f"Removing this signer will make {remote} unpullable. "
            "Are you sure you want to continue?")):
        return None
    try:
        repo.remove_delegation_keys(RELEASES, role.keyids)
        repo.remove_delegation(role_name)
        show_warnings(repo)
        show_change_warnings(repo)
        repo.publish()
    except (TrustError, OSError) as e:
        return str(e)
    print(f"Successfully removed {name} from {remote}\n", flush=True)
    return None
