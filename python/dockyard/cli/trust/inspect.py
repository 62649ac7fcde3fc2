"""`trust inspect [--pretty]`: signed tags, signers and administrative keys of
repositories, as docker's inspect.go and inspect_pretty.go show them."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..common import fail
from .shared import (RELEASES, REPO_ADMIN, arity, natural_key, open_repo, released_signatures,
                     show_warnings, signer_of, tag_of)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ...distribution.trust.repository import Repository


def lookup_trust_info(remote: str) -> tuple[list[dict[str, Any]], Repository]:
    from ...distribution.trust.errors import NoSuchTarget, TrustError
    from ...errors import InvalidReference
    from ...reference import parse_normalized

    try:
        ref = parse_normalized(remote)
        repo = open_repo(ref, strict=False, push=False)
    except (InvalidReference, TrustError) as e:
        raise LookupError(str(e)) from None
    try:
        repo.update()
        try:
            found = repo.targets_by_name(tag_of(ref))
        except NoSuchTarget:
            found = []
    except (TrustError, OSError, ValueError) as e:
        raise LookupError(f"no signatures or cannot access {remote}") from e
    # docker's three notary calls each update the repository, and warn again
    show_warnings(repo, 3)
    return released_signatures(found), repo


def signer_keys(repo: Repository) -> dict[str, list[str]]:
    """Signer name -> key IDs, for the delegations other than releases."""
    return {signer_of(r.name): r.keyids for r in repo.delegation_roles()
            if r.name != RELEASES}


def inspect(args: Optional[List[str]] = typer.Argument(None,
                                                       metavar="IMAGE[:TAG] [IMAGE[:TAG]...]"),
            pretty: bool = typer.Option(False, "--pretty",
                                        help="Print the information in a human friendly format")
            ) -> None:
    """Return low-level information about keys and signatures"""
    names = arity("inspect", args, "IMAGE[:TAG] [IMAGE[:TAG]...]", at_least=1)
    if pretty:
        for i, remote in enumerate(names):
            try:
                pretty_print(remote)
            except LookupError as e:
                fail(str(e))
            if i < len(names) - 1:
                sys.stdout.write("\n\n")
        return
    from ..output import print_json_indent

    found, errors = [], []
    for remote in names:
        try:
            found.append(repo_trust_info(remote))
        except LookupError as e:
            errors.append(str(e))
    print_json_indent(found)
    if errors:
        fail("\n".join(errors))


def repo_trust_info(remote: str) -> dict[str, Any]:
    rows, repo = lookup_trust_info(remote)
    for r in rows:
        if not r["Signers"]:
            r["Signers"] = [REPO_ADMIN]
    signers = [{"Name": n, "Keys": [{"ID": k} for k in ids]}
               for n, ids in signer_keys(repo).items()]
    signers.sort(key=lambda s: s["Name"], reverse=True)
    admin = []
    for role in repo.base_roles():
        label = {"root": "Root", "targets": "Repository"}.get(role.name)
        if label:
            admin.append({"Name": label, "Keys": [{"ID": k} for k in role.keyids]})
    admin.sort(key=lambda s: s["Name"], reverse=True)
    for s in signers + admin:  # Keys is omitempty
        if not s["Keys"]:
            del s["Keys"]
    return {"Name": remote, "SignedTags": rows, "Signers": signers, "AdministrativeKeys": admin}


def pretty_print(remote: str) -> None:
    from ..output import print_rows

    rows, repo = lookup_trust_info(remote)
    out = sys.stdout
    if rows:
        out.write(f"\nSignatures for {remote}\n\n")
        out.flush()
        print_rows("table {{.SignedTag}}\t{{.Digest}}\t{{.Signers}}",
                   [{"SignedTag": r["SignedTag"], "Digest": r["Digest"],
                     "Signers": ", ".join(sorted(r["Signers"] or [f"({REPO_ADMIN})"]))}
                    for r in rows],
                   {"SignedTag": "SIGNED TAG", "Digest": "DIGEST", "Signers": "SIGNERS"})
    else:
        out.write(f"\nNo signatures for {remote}\n\n")
    signers = signer_keys(repo)
    if signers:
        out.write(f"\nList of signers and their keys for {remote}\n\n")
        out.flush()
        print_rows("table {{.Signer}}\t{{.Keys}}",
                   [{"Signer": n, "Keys": ", ".join(k[:12] for k in sorted(ids))}
                    for n, ids in sorted(signers.items(), key=lambda x: natural_key(x[0]))],
                   {"Signer": "SIGNER", "Keys": "KEYS"})
    out.write(f"\nAdministrative keys for {remote}\n\n")
    for role in sorted(repo.base_roles(), key=lambda r: r.name, reverse=True):
        label = {"root": "Root Key", "targets": "Repository Key"}.get(role.name)
        if label:
            out.write(f"  {label}:\t{', '.join(sorted(role.keyids))}\n")
    out.flush()
