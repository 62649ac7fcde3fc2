"""`trust revoke`: a tag's (or every tag's) signatures removed from the roles
we can sign."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..common import fail
from .shared import RELEASES, arity, confirm, open_repo, parse_ref, show_warnings, tag_of

def revoke(args: Optional[List[str]] = typer.Argument(None, metavar="IMAGE[:TAG]"),
           yes: bool = typer.Option(False, "-y", "--yes", help="Do not prompt for confirmation")
           ) -> None:
    """Remove trust for an image"""
    from ...distribution.trust.errors import TrustError

    [image] = arity("revoke", args, "[OPTIONS] IMAGE[:TAG]", exactly=1)
    ref = parse_ref(image)
    tag = tag_of(ref)
    if not tag and ref.digest:
        fail("cannot use a digest reference for IMAGE:TAG")
    if not tag and not yes:
        if not confirm(f"Confirm you would like to delete all signature data for {image}?"):
            return  # docker's cancelled error: nothing more is printed, and it exits 0
    repo = open_repo(ref)
    try:
        repo.update()
        show_warnings(repo)  # each notary call docker makes updates, and warns
        if tag:
            _, target = repo.target_by_name(tag, RELEASES, "targets")
            targets = [target]
        else:
            targets = [t for _, t in repo.list_targets(RELEASES, "targets")]
            if not targets:
                raise TrustError("no signed tags to remove")
        for t in targets:
            show_warnings(repo)
            repo.remove_target(t.name, repo.signable_roles(t.name))
        show_warnings(repo)
        repo.publish()
    except (TrustError, OSError) as e:
        fail(f"could not remove signature for {image}: {e}")
    print(f"Successfully deleted signature for {image}")
