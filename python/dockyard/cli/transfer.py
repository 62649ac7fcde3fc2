"""pull and push for the CLI, without Typer: the fast path (cli/fast.py) calls
these directly, and the Typer commands in registry.py wrap them."""

from __future__ import annotations

import json

from .common import call, client, fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def auth_header(name: str) -> dict[str, str]:
    """X-Registry-Auth for the registry of image `name`, from the stored credentials."""
    from ..distribution import credentials
    from ..reference import parse_normalized

    try:
        domain = parse_normalized(name).domain
    except Exception:  # noqa: BLE001 - the daemon reports bad names in its own words
        return {}
    auth = credentials.lookup(domain)
    return {"X-Registry-Auth": auth.to_header()}


def stream_progress(method: str, path: str, params: dict, name: str, quiet: bool) -> dict:
    """A pull or push through the daemon, its progress shown as docker shows
    it (credentials for `name` sent); its aux message."""
    from .client import APIError
    from .progress import StreamError, show

    def lines():
        resp = client().request(method, path, params, None, auth_header(name))
        try:
            for line in resp.iter_lines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
        finally:
            resp.close()

    try:
        return call(lambda: show(lines(), quiet))
    except StreamError as e:
        fail(str(e))
    except APIError as e:  # pragma: no cover - call() handles these
        fail(f"Error response from daemon: {e.message}")


def _split_tag(name: str) -> tuple[str, str | None]:
    """("name", "tag or digest or None"), as the docker CLI sends them."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = name.rpartition(":")
        return repo, tag
    return name, None


def _reference(name: str, all_tags: bool, push: bool = False) -> tuple[Any, str, str | None]:
    """`name` parsed (exit 1 with docker's message if it isn't a reference),
    its repository, and its tag: "latest" (said aloud) when none is given,
    None with --all-tags."""
    from ..errors import InvalidReference
    from ..reference import parse_normalized

    try:
        ref = parse_normalized(name)
    except InvalidReference as e:
        fail(str(e))
    if push and ref.digest:
        fail("cannot push a digest reference")
    repo, tag = _split_tag(name)
    if all_tags and tag:
        fail("tag can't be used with --all-tags/-a")
    if not all_tags and tag is None:
        print("Using default tag: latest")
        tag = "latest"
        ref = ref.with_tag("latest")
    return ref, repo, tag


def pull(name: str, all_tags: bool = False, platform: str | None = None,
         quiet: bool = False) -> None:
    ref, repo, tag = _reference(name, all_tags)
    params = {"fromImage": repo, "tag": tag, "platform": platform}
    stream_progress("POST", "/images/create", params, name, quiet)
    print(ref.name if all_tags else str(ref))


def push(name: str, all_tags: bool = False, quiet: bool = False) -> None:
    from .client import path_quote

    ref, repo, tag = _reference(name, all_tags, push=True)
    stream_progress("POST", f"/images/{path_quote(repo)}/push", {"tag": tag}, name, quiet)
    if quiet:
        print(str(ref.with_tag(tag)) if tag else ref.name)
