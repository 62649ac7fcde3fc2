"""Image routes: list, inspect, history, tag, delete, import and pull (both
`POST /images/create`), push, save, load, prune. Pull and push answer as
dockerd does (see `streams.LazyJSONMessages`); a client that goes away stops
the transfer, and layers already committed stay for the next pull."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ... import filters as image_filters
from ... import reference
from ...errors import ImageNotFound, InvalidParameter
from ..errors import message_of
from ..streams import JSONMessages, LazyJSONMessages, ResponseWriter, body_chunks, start_stream
from ..views import image_inspect, image_summary
from . import blocking, engine, json_response, qbool, registry_auth


async def list_images(request: web.Request) -> web.Response:
    eng = engine(request)
    f = image_filters.parse(request.query.get("filters"), image_filters.IMAGE_FILTERS)
    if request.query.get("filter"):
        f.setdefault("reference", []).append(request.query["filter"])

    def work() -> list:
        return [image_summary(eng, i) for i in eng.list_images(qbool(request, "all"), f)]

    return json_response(await blocking(work))


async def inspect_image(request: web.Request) -> web.Response:
    eng = engine(request)
    name = request.match_info["name"]

    def work() -> dict:
        try:
            img = eng.get_image(name)
        except ImageNotFound as e:
            # dockerd's inspect wraps the store's message with the name asked for.
            raise ImageNotFound(f"no such image: {name}: {e}") from None
        return image_inspect(eng, img)

    return json_response(await blocking(work))


async def history(request: web.Request) -> web.Response:
    eng = engine(request)
    return json_response(await blocking(eng.history, request.match_info["name"]))


async def tag(request: web.Request) -> web.Response:
    eng = engine(request)
    repo = request.query.get("repo", "")
    t = request.query.get("tag") or None
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    await blocking(eng.tag_image, request.match_info["name"], repo, t)
    return web.Response(status=201)


async def delete(request: web.Request) -> web.Response:
    eng = engine(request)
    out = await blocking(eng.remove_image, request.match_info["name"],
                         qbool(request, "force"), not qbool(request, "noprune"))
    return json_response(out)


async def create(request: web.Request) -> web.StreamResponse:
    """POST /images/create: `fromSrc=-` imports the body; `fromImage` pulls."""
    eng = engine(request)
    q = request.query
    src = q.get("fromSrc")
    if src is None:
        if q.get("fromImage"):
            return await pull(request)
        raise InvalidParameter("fromImage or fromSrc is required")
    if src != "-":
        raise InvalidParameter("importing from a URL is not supported: pass the tarball as "
                               "the request body (fromSrc=-)")
    changes = q.getall("changes", [])
    loop = asyncio.get_running_loop()
    repo = q.get("repo") or None
    if repo:
        # Check the reference before reading the body, as dockerd does.
        reference.parse_normalized(repo if not q.get("tag") else f"{repo}:{q['tag']}")

    resp = await start_stream(request, "application/json")
    msgs = JSONMessages(resp, loop)

    def work() -> None:
        try:
            img = eng.import_image(body_chunks(request, loop), repo=repo,
                                   tag=q.get("tag") or None, message=q.get("message", ""),
                                   changes=changes, platform=q.get("platform") or None)
        except Exception as e:  # noqa: BLE001 - the stream has started: report in-band
            msgs.error(message_of(e))
            return
        msgs({"status": img.id})

    await blocking(work)
    await resp.write_eof()
    return resp


async def pull(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    q = request.query
    name = q.get("fromImage", "")
    tag = q.get("tag") or None
    auth = registry_auth(request)
    platform = q.get("platform") or None
    stream = LazyJSONMessages(request, asyncio.get_running_loop())
    # An empty tag pulls every tag, as dockerd's API does (the CLI sends "latest").
    all_tags = tag is None and "@" not in name and not _has_tag(name)

    def work() -> None:
        eng.pull(name, tag, auth, stream, platform, all_tags)

    return await stream.run(work)


def _has_tag(name: str) -> bool:
    last = name.rsplit("/", 1)[-1]
    return ":" in last


async def push(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    name = request.match_info["name"]
    tag = request.query.get("tag") or None
    auth = registry_auth(request)
    stream = LazyJSONMessages(request, asyncio.get_running_loop())

    def work() -> None:
        eng.push(name, tag, auth, stream)

    return await stream.run(work)


async def get_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def get_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    eng = engine(request)
    # Resolve first so that a bad name is a clean 404, not a broken stream.
    for n in names:
        await blocking(eng.get_image, n)
    loop = asyncio.get_running_loop()
    resp = await start_stream(request, "application/x-tar")
    try:
        await blocking(eng.save, names, ResponseWriter(resp, loop))
    except Exception as e:  # noqa: BLE001 - mid-stream: the only signal left is a cut
        message_of(e)
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


async def load(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    loop = asyncio.get_running_loop()
    quiet = qbool(request, "quiet")
    resp = await start_stream(request, "application/json")
    msgs = JSONMessages(resp, loop)

    def progress(m: dict) -> None:
        if "stream" in m or not quiet:
            msgs(m)

    def work() -> None:
        try:
            eng.load(body_chunks(request, loop), progress)
        except Exception as e:  # noqa: BLE001 - the stream has started: report in-band
            msgs.error(message_of(e))

    await blocking(work)
    await resp.write_eof()
    return resp


async def prune(request: web.Request) -> web.Response:
    eng = engine(request)
    f = image_filters.parse(request.query.get("filters"),
                            {"dangling", "label", "until", "label!"})
    dangling = True
    if "dangling" in f:
        dangling = f.pop("dangling")[0].lower() in ("true", "1")
    f.pop("until", None)
    return json_response(await blocking(eng.prune_images, dangling, f or None))


def register(r: Any) -> None:
    r.add("GET", "/images/json", list_images)
    r.add("POST", "/images/{name:.+}/push", push)
    r.add("POST", "/images/create", create)
    r.add("POST", "/images/load", load)
    r.add("GET", "/images/get", get_many)
    r.add("POST", "/images/prune", prune)
    r.add("GET", "/images/{name:.+}/json", inspect_image)
    r.add("GET", "/images/{name:.+}/history", history)
    r.add("POST", "/images/{name:.+}/tag", tag)
    r.add("GET", "/images/{name:.+}/get", get_one)
    r.add("DELETE", "/images/{name:.+}", delete)
