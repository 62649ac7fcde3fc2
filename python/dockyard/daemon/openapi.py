"""The OpenAPI 3 description the daemon publishes at GET /openapi.json (and
/v1.xx/openapi.json). Paths and methods come from the route table the daemon
serves, so the description cannot list a route that isn't there or miss one;
the query parameters and request bodies of the main endpoints come from
`OPERATIONS` below, written from the handlers."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .. import __version__

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_BOOL: Schema = {"type": "boolean"}
_INT: Schema = {"type": "integer"}
_STRS: Schema = {"type": "array", "items": _STR}
_MAP: Schema = {"type": "object", "additionalProperties": _STR}
_ID = "ID or name"


def q(name: str, schema: Schema = _STR, desc: str = "", required: bool = False) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": desc,
            "required": required}


def _filters(what: str) -> Schema:
    return q("filters", _STR, f"JSON map of {what} filters to lists of values, "
             'e.g. {"label": ["a=b"]}')


AUTH_HEADER = {"name": "X-Registry-Auth", "in": "header", "schema": _STR,
               "description": "base64url-encoded JSON credentials"}

SCHEMAS: dict[str, Schema] = {
    "ErrorResponse": {"type": "object", "required": ["message"],
                      "properties": {"message": _STR}},
    "NetworkCreate": {"type": "object", "required": ["Name"], "properties": {
        "Name": _STR, "CheckDuplicate": _BOOL, "Driver": _STR, "Internal": _BOOL,
        "Attachable": _BOOL, "Ingress": _BOOL, "EnableIPv6": _BOOL, "Options": _MAP,
        "Labels": _MAP, "IPAM": {"type": "object", "properties": {
            "Driver": _STR, "Options": _MAP, "Config": {"type": "array", "items": {
                "type": "object", "properties": {
                    "Subnet": _STR, "IPRange": _STR, "Gateway": _STR,
                    "AuxiliaryAddresses": _MAP}}}}}}},
    "EndpointSettings": {"type": "object", "properties": {
        "IPAMConfig": {"type": "object", "nullable": True, "properties": {
            "IPv4Address": _STR, "IPv6Address": _STR}},
        "Aliases": _STRS, "Links": _STRS, "MacAddress": _STR, "DriverOpts": _MAP}},
    "NetworkConnect": {"type": "object", "properties": {
        "Container": _STR, "EndpointConfig": {"$ref": "#/components/schemas/EndpointSettings"}}},
    "VolumeCreate": {"type": "object", "properties": {
        "Name": _STR, "Driver": _STR, "DriverOpts": _MAP, "Labels": _MAP}},
    "NetworkDisconnect": {"type": "object", "properties": {"Container": _STR,
                                                           "Force": _BOOL}},
    "HostConfig": {"type": "object", "properties": {
        "Binds": _STRS, "NetworkMode": _STR, "Privileged": _BOOL, "ReadonlyRootfs": _BOOL,
        "AutoRemove": _BOOL, "Init": {"type": "boolean", "nullable": True},
        "Memory": _INT, "MemorySwap": _INT, "CpuShares": _INT, "NanoCpus": _INT,
        "CpusetCpus": _STR, "PidsLimit": {"type": "integer", "nullable": True},
        "CapAdd": _STRS, "CapDrop": _STRS, "SecurityOpt": _STRS, "Tmpfs": _MAP,
        "Ulimits": {"type": "array", "items": {"type": "object", "properties": {
            "Name": _STR, "Soft": _INT, "Hard": _INT}}},
        "RestartPolicy": {"type": "object", "properties": {
            "Name": _STR, "MaximumRetryCount": _INT}},
        "ExtraHosts": _STRS, "Dns": _STRS, "ShmSize": _INT,
    }},
    "ContainerConfig": {"type": "object", "properties": {
        "Image": _STR, "Cmd": _STRS, "Entrypoint": _STRS, "Env": _STRS,
        "WorkingDir": _STR, "User": _STR, "Hostname": _STR, "Domainname": _STR,
        "Labels": _MAP, "Tty": _BOOL, "OpenStdin": _BOOL, "StdinOnce": _BOOL,
        "AttachStdin": _BOOL, "AttachStdout": _BOOL, "AttachStderr": _BOOL,
        "ExposedPorts": {"type": "object", "additionalProperties": {"type": "object"}},
        "Volumes": {"type": "object", "additionalProperties": {"type": "object"}},
        "StopSignal": _STR, "StopTimeout": {"type": "integer", "nullable": True},
        "NetworkDisabled": _BOOL,
        "Healthcheck": {"type": "object", "properties": {
            "Test": _STRS, "Interval": _INT, "Timeout": _INT, "Retries": _INT,
            "StartPeriod": _INT}},
    }},
    "ContainerCreate": {"allOf": [
        {"$ref": "#/components/schemas/ContainerConfig"},
        {"type": "object", "properties": {
            "HostConfig": {"$ref": "#/components/schemas/HostConfig"},
            "NetworkingConfig": {"type": "object"}}}]},
    "ExecConfig": {"type": "object", "required": ["Cmd"], "properties": {
        "Cmd": _STRS, "AttachStdin": _BOOL, "AttachStdout": _BOOL, "AttachStderr": _BOOL,
        "DetachKeys": _STR, "Tty": _BOOL, "Env": _STRS, "Privileged": _BOOL, "User": _STR,
        "WorkingDir": _STR}},
    "ExecStart": {"type": "object", "properties": {"Detach": _BOOL, "Tty": _BOOL}},
    "AuthConfig": {"type": "object", "properties": {
        "username": _STR, "password": _STR, "email": _STR, "serveraddress": _STR,
        "identitytoken": _STR}},
}


def _json_body(ref: str, required: bool = False) -> Schema:
    return {"required": required, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _tar_body(required: bool = True) -> Schema:
    return {"required": required, "content": {"application/x-tar": {
        "schema": {"type": "string", "format": "binary"}}}}


_LOGS = [q("stdout", _BOOL), q("stderr", _BOOL), q("since", _STR, "UNIX time or duration"),
         q("until", _STR), q("timestamps", _BOOL), q("tail", _STR, '"all" or a number'),
         q("follow", _BOOL)]

#: (method, path as registered) -> summary, parameters, requestBody, status
#: The swarm-mode routes beyond leave/init/join (routes/swarm.py), each answered
#: as by a dockerd in no swarm.
SWARM_ROUTES = [("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
                ("POST", "/swarm/update"), ("GET", "/tasks"), ("GET", "/tasks/{id}"),
                ("GET", "/tasks/{id}/logs"), ("GET", "/services/{id}/logs")] + [
    (m, f"/{kind}s{tail}") for kind in ("service", "node", "secret", "config")
    for m, tail in (("GET", ""), ("GET", "/{id}"), ("POST", "/{id}/update"),
                    ("DELETE", "/{id}"), ("POST", "/create")) if (kind, tail) != ("node", "/create")]

OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/_ping"): {"summary": "Ping the daemon"},
    ("HEAD", "/_ping"): {"summary": "Ping the daemon (headers only)"},
    ("GET", "/version"): {"summary": "Versions of the engine and its API"},
    ("GET", "/info"): {"summary": "System-wide information"},
    ("GET", "/system/df"): {"summary": "Disk usage"},
    ("GET", "/containers/{id}/checkpoints"): {
        "summary": "Checkpoints (experimental in dockerd: 501 here)", "status": "501"},
    ("POST", "/containers/{id}/checkpoints"): {
        "summary": "Create a checkpoint (experimental in dockerd: 501 here)", "status": "501"},
    ("DELETE", "/containers/{id}/checkpoints/{checkpoint}"): {
        "summary": "Remove a checkpoint (experimental in dockerd: 501 here)", "status": "501"},
    ("GET", "/system/check"): {"summary": "Check the store, containers and volumes (Dockyard's)",
                               "parameters": [q("verify", _BOOL), q("grace", _STR)]},
    ("POST", "/system/check"): {"summary": "Check, and repair what belongs to nothing",
                                "parameters": [q("verify", _BOOL), q("repair", _BOOL),
                                               q("grace", _STR)]},
    ("GET", "/openapi.json"): {"summary": "This description"},
    ("GET", "/events"): {"summary": "Stream events", "parameters": [
        q("since", _STR), q("until", _STR), _filters("event")]},
    ("GET", "/containers/json"): {"summary": "List containers", "parameters": [
        q("all", _BOOL), q("limit", _INT), q("size", _BOOL), _filters("container")]},
    ("POST", "/containers/create"): {
        "summary": "Create a container", "status": "201",
        "parameters": [q("name", _STR, "/?[a-zA-Z0-9][a-zA-Z0-9_.-]+"), q("platform")],
        "requestBody": _json_body("ContainerCreate", required=True)},
    ("POST", "/containers/prune"): {"summary": "Remove stopped containers",
                                    "parameters": [_filters("prune")]},
    ("GET", "/containers/{id}/json"): {"summary": "Inspect a container",
                                       "parameters": [q("size", _BOOL)]},
    ("POST", "/containers/{id}/start"): {"summary": "Start a container", "status": "204",
                                         "parameters": [q("detachKeys")]},
    ("POST", "/containers/{id}/stop"): {"summary": "Stop a container", "status": "204",
                                        "parameters": [q("t", _INT, "seconds before SIGKILL")]},
    ("POST", "/containers/{id}/restart"): {"summary": "Restart a container", "status": "204",
                                           "parameters": [q("t", _INT)]},
    ("POST", "/containers/{id}/kill"): {"summary": "Send a signal", "status": "204",
                                        "parameters": [q("signal", _STR, "name or number")]},
    ("POST", "/containers/{id}/wait"): {"summary": "Wait for a container", "parameters": [
        q("condition", {"type": "string", "enum": ["not-running", "next-exit", "removed"]})]},
    ("POST", "/containers/{id}/rename"): {"summary": "Rename a container", "status": "204",
                                          "parameters": [q("name", required=True)]},
    ("POST", "/containers/{id}/resize"): {"summary": "Resize the TTY",
                                          "parameters": [q("h", _INT), q("w", _INT)]},
    ("POST", "/containers/{id}/attach"): {"summary": "Attach (hijacks the connection)",
                                          "status": "101", "parameters": [
        q("stream", _BOOL), q("logs", _BOOL), q("stdin", _BOOL), q("stdout", _BOOL),
        q("stderr", _BOOL), q("detachKeys")]},
    ("GET", "/containers/{id}/logs"): {"summary": "Container logs", "parameters": _LOGS},
    ("DELETE", "/containers/{id}"): {"summary": "Remove a container", "status": "204",
                                     "parameters": [q("force", _BOOL), q("v", _BOOL),
                                                    q("link", _BOOL)]},
    ("POST", "/containers/{id}/pause"): {"summary": "Freeze a container", "status": "204"},
    ("POST", "/containers/{id}/unpause"): {"summary": "Thaw a container", "status": "204"},
    ("POST", "/containers/{id}/update"): {"summary": "Change resource limits or the restart "
                                          "policy"},
    ("GET", "/containers/{id}/top"): {"summary": "Processes in a container",
                                      "parameters": [q("ps_args")]},
    ("GET", "/containers/{id}/changes"): {"summary": "Filesystem changes"},
    ("GET", "/containers/{id}/export"): {"summary": "Export the filesystem as a tar"},
    ("GET", "/containers/{id}/stats"): {"summary": "Resource usage", "parameters": [
        q("stream", _BOOL), q("one-shot", _BOOL)]},
    ("HEAD", "/containers/{id}/archive"): {"summary": "Stat a path",
                                           "parameters": [q("path", required=True)]},
    ("GET", "/containers/{id}/archive"): {"summary": "A path as a tar",
                                          "parameters": [q("path", required=True)]},
    ("PUT", "/containers/{id}/archive"): {
        "summary": "Extract a tar into a path", "parameters": [
            q("path", required=True), q("noOverwriteDirNonDir", _BOOL), q("copyUIDGID", _BOOL)],
        "requestBody": _tar_body()},
    ("POST", "/commit"): {"summary": "Make an image from a container", "status": "201",
                          "parameters": [q("container", required=True), q("repo"), q("tag"),
                                         q("comment"), q("author"), q("pause", _BOOL),
                                         q("changes", _STR, "Dockerfile instruction")],
                          "requestBody": _json_body("ContainerConfig")},
    ("POST", "/containers/{id}/exec"): {"summary": "Create an exec instance", "status": "201",
                                        "requestBody": _json_body("ExecConfig", True)},
    ("POST", "/exec/{id}/start"): {"summary": "Start an exec instance (hijacks unless "
                                   "Detach)", "requestBody": _json_body("ExecStart")},
    ("POST", "/exec/{id}/resize"): {"summary": "Resize an exec's TTY",
                                    "parameters": [q("h", _INT), q("w", _INT)]},
    ("GET", "/exec/{id}/json"): {"summary": "Inspect an exec instance"},
    ("GET", "/images/json"): {"summary": "List images", "parameters": [
        q("all", _BOOL), q("digests", _BOOL), _filters("image")]},
    ("POST", "/images/create"): {
        "summary": "Pull (fromImage) or import (fromSrc=-) an image", "parameters": [
            q("fromImage"), q("fromSrc"), q("repo"), q("tag"), q("message"), q("platform"),
            q("changes", _STR, "Dockerfile instruction"), AUTH_HEADER],
        "requestBody": _tar_body(required=False)},
    ("POST", "/images/load"): {"summary": "Load images from a tar (docker save)",
                               "parameters": [q("quiet", _BOOL)], "requestBody": _tar_body()},
    ("GET", "/images/get"): {"summary": "Save images as a tar",
                             "parameters": [q("names", _STR, "repeatable", required=True)]},
    ("POST", "/images/prune"): {"summary": "Remove unused images",
                                "parameters": [_filters("prune")]},
    ("POST", "/build"): {
        "summary": "Build an image from a tar context (the classic builder)", "parameters": [
            q("t", _STR, "repeatable"), q("dockerfile"), q("buildargs", _STR, "JSON object"),
            q("nocache", _BOOL), q("rm", _BOOL), q("forcerm", _BOOL), q("pull", _BOOL),
            q("q", _BOOL), q("target"), q("labels", _STR, "JSON object"),
            q("cachefrom", _STR, "JSON array"), q("networkmode"),
            q("extrahosts", _STR, "repeatable"), q("shmsize", _INT), q("memory", _INT),
            q("memswap", _INT), q("cpushares", _INT), q("cpusetcpus"), q("cpusetmems"),
            q("cpuperiod", _INT), q("cpuquota", _INT), q("cgroupparent"),
            q("ulimits", _STR, "JSON array"), q("platform"), q("squash", _BOOL),
            q("buildid"), q("version")],
        "requestBody": _tar_body(required=False)},
    ("POST", "/build/prune"): {"summary": "Prune the build cache"},
    ("POST", "/build/cancel"): {"summary": "Cancel a build", "parameters": [q("id")]},
    ("POST", "/session"): {"summary": "BuildKit's session (not served: 404)"},
    ("POST", "/grpc"): {"summary": "BuildKit's gRPC API (not served: 404)"},
    ("GET", "/images/search"): {"summary": "Search Docker Hub", "parameters": [
        q("term", required=True), q("limit", _INT), _filters("search")]},
    ("POST", "/images/{name}/push"): {"summary": "Push an image",
                                      "parameters": [q("tag"), AUTH_HEADER]},
    ("POST", "/auth"): {"summary": "Check registry credentials",
                        "requestBody": _json_body("AuthConfig", True)},
    ("GET", "/images/{name}/json"): {"summary": "Inspect an image"},
    ("GET", "/images/{name}/history"): {"summary": "An image's history"},
    ("POST", "/images/{name}/tag"): {"summary": "Tag an image", "status": "201",
                                     "parameters": [q("repo", required=True), q("tag")]},
    ("GET", "/images/{name}/get"): {"summary": "Save one image as a tar"},
    ("DELETE", "/images/{name}"): {"summary": "Remove an image", "parameters": [
        q("force", _BOOL), q("noprune", _BOOL)]},
    ("GET", "/networks"): {"summary": "List networks", "parameters": [_filters("network")]},
    ("POST", "/networks/create"): {"summary": "Create a network", "status": "201",
                                   "requestBody": _json_body("NetworkCreate", True)},
    ("POST", "/networks/prune"): {"summary": "Remove unused networks",
                                  "parameters": [_filters("prune")]},
    ("GET", "/networks/{id}"): {"summary": "Inspect a network"},
    ("DELETE", "/networks/{id}"): {"summary": "Remove a network", "status": "204"},
    ("POST", "/networks/{id}/connect"): {"summary": "Connect a container to a network",
                                         "requestBody": _json_body("NetworkConnect", True)},
    ("POST", "/networks/{id}/disconnect"): {
        "summary": "Disconnect a container from a network",
        "requestBody": _json_body("NetworkDisconnect", True)},
    ("GET", "/volumes"): {"summary": "List volumes", "parameters": [_filters("volume")]},
    ("POST", "/volumes/create"): {"summary": "Create a volume", "status": "201",
                                  "requestBody": _json_body("VolumeCreate")},
    ("POST", "/volumes/prune"): {"summary": "Remove unused volumes",
                                 "parameters": [_filters("prune")]},
    ("GET", "/volumes/{name}"): {"summary": "Inspect a volume"},
    ("POST", "/build/prune"): {"summary": "Delete the build cache",
                               "parameters": [q("all", _BOOL), q("keep-storage", _INT),
                                              _filters("prune")]},
    ("DELETE", "/volumes/{name}"): {"summary": "Remove a volume", "status": "204",
                                    "parameters": [q("force", _BOOL)]},
    ("POST", "/swarm/leave"): {"summary": "Not in a swarm: 503", "status": "503"},
    ("POST", "/swarm/init"): {"summary": "Swarm mode is not supported: 503", "status": "503"},
    ("POST", "/swarm/join"): {"summary": "Swarm mode is not supported: 503", "status": "503"},
    **{(m, p): {"summary": "Not a swarm manager: 503", "status": "503"} for m, p in SWARM_ROUTES},
    ("GET", "/plugins"): {"summary": "List plugins (none: drivers are built in)",
                          "parameters": [_filters("plugin")]},
    ("GET", "/plugins/privileges"): {"summary": "Managed plugins are not supported: 400",
                                     "status": "400"},
    ("POST", "/plugins/pull"): {"summary": "Managed plugins are not supported: 400",
                                "status": "400"},
    ("POST", "/plugins/create"): {"summary": "Managed plugins are not supported: 400",
                                  "status": "400"},
    **{(m, "/plugins/{name}" + sfx): {"summary": "No such plugin: 404", "status": "404"}
       for m, sfx in (("GET", "/json"), ("DELETE", ""), ("POST", "/enable"), ("POST", "/disable"),
                      ("POST", "/upgrade"), ("POST", "/push"), ("POST", "/set"))},
}

_PARAM = re.compile(r"\{(\w+)(?::[^{}]*)?\}")


def template(path: str) -> str:
    """aiohttp's `{name:.+}` as OpenAPI's `{name}`."""
    return _PARAM.sub(r"{\1}", path)


def _operation(method: str, path: str, handler: Any) -> Schema:
    tmpl = template(path)
    extra = OPERATIONS.get((method, tmpl), {})
    doc = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    op: Schema = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', tmpl)}".rstrip("_"),
        "summary": extra.get("summary") or (doc[0] if doc else f"{method} {tmpl}"),
        "parameters": [{"name": n, "in": "path", "required": True, "schema": _STR,
                        "description": _ID if n == "id" else
                        "volume name" if tmpl.startswith("/volumes") else
                        "image name, reference or ID"}
                       for n in _PARAM.findall(path)] + list(extra.get("parameters", [])),
        "responses": {
            extra.get("status", "200"): {"description": "success"},
            "default": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
        },
    }
    if "requestBody" in extra:
        op["requestBody"] = extra["requestBody"]
    return op


def describe(routes: list[tuple[str, str, Any]], api_version: str) -> Schema:
    paths: dict[str, Schema] = {}
    for method, path, handler in routes:
        paths.setdefault(template(path), {})[method.lower()] = _operation(method, path, handler)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Dockyard Engine API", "version": api_version,
                 "description": f"The Docker Engine API as Dockyard {__version__} serves it. "
                 "Every path is also served under /v{major}.{minor}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


async def serve(request: web.Request) -> web.Response:
    from .api import API_VERSION

    return web.json_response(describe(request.app["routes"], API_VERSION))
