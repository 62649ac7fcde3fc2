"""The Engine API's /build endpoints, over the engine's classic builder
(`dockyard.build.service`). The whole context is read and the Dockerfile
parsed before the answer starts, so bad parameters, a missing Dockerfile or
a parse error are HTTP errors; once the stream has started, a failed step
travels in-band as dockerd's `errorDetail`. A `remote` context (git or
http(s), `dockyard.build.remote`) is fetched by the daemon: a download's
progress starts the answer, so what fails after it is in-band. BuildKit (`/session`, `/grpc`,
`version=2`) is not served: clients fall back to the classic builder with
DOCKER_BUILDKIT=0."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...build.executor import BuildOptions
from ...build.output import BuildOutput
from ...build.remote import Download, GitRemote, open_url, remote_kind
from ...distribution.auth import AuthConfig
from ...errors import DockyardError, InvalidParameter
from ..errors import error_response
from ..streams import body_chunks, start_stream
from . import blocking, engine

if TYPE_CHECKING:
    from ..api import VersionedApp

NO_BUILDKIT = ("BuildKit is not supported by this daemon (Dockyard serves the classic "
               "builder): build with DOCKER_BUILDKIT=0")

# HostConfig fields a build's RUN containers take from the query (name, key, kind).
_RESOURCES = (("memory", "Memory", int), ("memswap", "MemorySwap", int),
              ("cpushares", "CpuShares", int), ("cpuperiod", "CpuPeriod", int),
              ("cpuquota", "CpuQuota", int), ("cpusetcpus", "CpusetCpus", str),
              ("cpusetmems", "CpusetMems", str), ("cgroupparent", "CgroupParent", str),
              ("shmsize", "ShmSize", int))


def _bool(q: Any, name: str, default: bool = False) -> bool:
    """httputils.BoolValue: "", 0, no, false, none (any case) are false."""
    v = q.get(name)
    if v is None:
        return default
    return v.strip().lower() not in ("", "0", "no", "false", "none")


def _json(q: Any, name: str, kind: type) -> Any:
    """A JSON parameter; empty, `null` and the empty value mean none."""
    raw = q.get(name)
    if not raw:
        return kind()
    try:
        v = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name} value: {raw!r} is not JSON") from None
    if v is None:
        return kind()
    if not isinstance(v, kind):
        raise InvalidParameter(f"invalid {name} value: {raw!r}")
    return v


def build_options(q: Any) -> tuple[BuildOptions, str]:
    """The build's options and the Dockerfile's name, from the query string
    (dockerd's newImageBuildOptions)."""
    if q.get("version") == "2":
        raise InvalidParameter(NO_BUILDKIT)
    if _bool(q, "squash"):
        raise InvalidParameter("squash is only supported with experimental mode")
    if _json(q, "securityopt", list):
        raise InvalidParameter("The daemon on this platform does not support setting "
                               "security options on build")
    iso = q.get("isolation", "")
    if iso and iso.lower() != "default":
        raise InvalidParameter(f'Unsupported isolation: "{iso}"')
    build_args = _json(q, "buildargs", dict)
    labels = _json(q, "labels", dict)
    hc: dict[str, Any] = {}
    for param, key, kind in _RESOURCES:
        v = q.get(param)
        if not v:
            continue
        try:
            hc[key] = kind(v)
        except ValueError:
            raise InvalidParameter(f'strconv.ParseInt: parsing "{v}": invalid syntax') from None
    net = q.get("networkmode") or "default"
    hc["NetworkMode"] = net
    extra_hosts = [h for v in q.getall("extrahosts", []) for h in v.split(",") if h]
    if extra_hosts:
        hc["ExtraHosts"] = extra_hosts
    ulimits = _json(q, "ulimits", list)
    if ulimits:
        hc["Ulimits"] = ulimits
    opts = BuildOptions(
        tags=[t for t in q.getall("t", []) if t],
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        no_cache=_bool(q, "nocache"),
        remove=_bool(q, "rm", True) or _bool(q, "forcerm"),
        force_remove=_bool(q, "forcerm"),
        target=q.get("target", ""),
        labels={str(k): str(v) for k, v in labels.items()},
        quiet=_bool(q, "q"),
        pull=_bool(q, "pull"),
        platform=q.get("platform", ""),
        cache_from=[str(c) for c in _json(q, "cachefrom", list)],
        host_config=hc,
        build_id=q.get("buildid", ""),
    )
    return opts, q.get("dockerfile", "")


def registry_configs(header: str | None) -> dict[str, AuthConfig]:
    """X-Registry-Config: base64url JSON of {registry: AuthConfig}; like
    dockerd, a header that does not decode is ignored."""
    if not header:
        return {}
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        d = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(d, dict):
        return {}
    return {str(k): AuthConfig.from_dict(v) for k, v in d.items() if isinstance(v, dict)}


async def build(request: web.Request) -> web.StreamResponse:
    """POST /build: read the whole context, then stream the build."""
    eng = engine(request)
    opts, dockerfile = build_options(request.query)
    opts.auth_configs = registry_configs(request.headers.get("X-Registry-Config"))
    remote = request.query.get("remote", "")
    if remote:
        return await _build_remote(request, remote, opts, dockerfile)
    loop = asyncio.get_running_loop()
    prepared = await blocking(eng.builds.prepare, body_chunks(request, loop), opts, dockerfile)
    resp = await start_stream(request, "application/json")
    return await _run(request, resp, prepared)


async def _run(request: web.Request, resp: web.StreamResponse, prepared: Any,
               discard: bool = False) -> web.StreamResponse:
    """Stream a prepared build's output into the started `resp` (or, with
    `discard`, nowhere); closes the build."""
    loop = asyncio.get_running_loop()
    try:
        def write(data: bytes) -> None:
            if not discard:
                asyncio.run_coroutine_threadsafe(resp.write(data), loop).result()

        async def watch_client() -> None:
            # A client that goes away cancels the build, as dockerd's context does.
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.2)
            await blocking(prepared.cancel)

        watcher = asyncio.ensure_future(watch_client())
        try:
            await blocking(prepared.run, write)
        except (ConnectionError, RuntimeError):
            return resp  # the client went away
        finally:
            watcher.cancel()
    finally:
        await blocking(prepared.close)
    if not discard:
        try:
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
    return resp


async def _build_remote(request: web.Request, remote: str, opts: BuildOptions,
                        dockerfile: str) -> web.StreamResponse:
    """remotecontext.Detect's half of POST /build. dockerd never reads the
    body then; but a body holds its output back until the body is read, so
    with one the answer is an empty 200 once any output was due (errors
    before it keep their status), and the build runs all the same."""
    eng = engine(request)
    discard = bool(await request.content.readany())
    await blocking(eng.builds.check, opts)  # the tags first, as dockerd's backend
    kind = remote_kind(remote)
    if kind == "git":
        # Clone errors come before any output: HTTP errors.
        prepared = await blocking(eng.builds.prepare, (), opts, dockerfile, GitRemote(remote))
        if discard:
            await _run(request, web.StreamResponse(), prepared, discard=True)
            return web.Response(status=200, content_type="application/json")
        return await _run(request, await start_stream(request, "application/json"), prepared)
    download: Download = await blocking(open_url, remote)
    # The download's progress starts the answer: from here errors are in-band.
    loop = asyncio.get_running_loop()
    try:
        resp = web.StreamResponse() if discard else \
            await start_stream(request, "application/json")
    except BaseException:
        download.close()
        raise

    def write(data: bytes) -> None:
        if not discard:
            asyncio.run_coroutine_threadsafe(resp.write(data), loop).result()

    out = BuildOutput(write, opts.quiet)
    try:
        prepared = await blocking(eng.builds.prepare, (), opts, dockerfile, download, out)
    except (ConnectionError, RuntimeError):
        return resp  # the client went away
    except Exception as e:  # noqa: BLE001 - after the answer started: in-band
        try:
            await blocking(out.error, str(e) if isinstance(e, DockyardError) or not str(e)
                           else f"{type(e).__name__}: {e}")
        except (ConnectionError, RuntimeError):
            return resp
        prepared = None
    if prepared is not None:
        await _run(request, resp, prepared, discard)
    elif not discard:
        try:
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
    if discard:
        return web.Response(status=200, content_type="application/json")
    return resp


async def prune(request: web.Request) -> web.Response:
    """POST /build/prune: the classic builder's cache is its intermediate
    images (removed by `image prune`); this drops the index rows of images
    that are gone. dockerd's answer for a classic-only daemon."""
    eng = engine(request)
    await blocking(eng.builds.prune)
    return web.json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


async def cancel(request: web.Request) -> web.Response:
    """POST /build/cancel?id=: stop the build started with that `buildid`
    (builds also stop when their client goes away)."""
    await blocking(engine(request).builds.cancel, request.query.get("id", ""))
    return web.Response(status=200)


async def buildkit_only(request: web.Request) -> web.Response:
    """/session and /grpc are BuildKit's; dockerd without it answers 404."""
    return error_response(404, NO_BUILDKIT)


def register(routes: VersionedApp) -> None:
    routes.add("POST", "/build", build)
    routes.add("POST", "/build/prune", prune)
    routes.add("POST", "/build/cancel", cancel)
    routes.add("POST", "/session", buildkit_only)
    routes.add("POST", "/grpc", buildkit_only)
