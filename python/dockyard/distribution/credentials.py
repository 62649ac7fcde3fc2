"""Where the client keeps registry credentials: `~/.dockyard/config.json` in
docker's `config.json` format (`{"auths": {"host:port": {"auth": base64}}}`,
Docker Hub under `https://index.docker.io/v1/`), read together with docker's
own (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), whose
credential helpers (`credsStore`, `credHelpers`) are honoured for reading.

Logins write to Dockyard's file only, replaced atomically with mode 0600.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from .auth import AuthConfig
from .endpoints import DEFAULT_DOMAIN, INDEX_SERVER, normalize_server


def dockyard_config_dir() -> Path:
    d = os.environ.get("DOCKYARD_CONFIG")
    return Path(d) if d else Path.home() / ".dockyard"


def docker_config_dir() -> Path:
    d = os.environ.get("DOCKER_CONFIG")
    return Path(d) if d else Path.home() / ".docker"


def server_key(server: str) -> str:
    """The `auths` key for a server: Hub's legacy URL, else `host[:port]`."""
    domain = normalize_server(server)
    return INDEX_SERVER if domain == DEFAULT_DOMAIN else domain


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"loading config file {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def _match(auths: dict[str, Any], key: str) -> dict[str, Any] | None:
    if key in auths:
        return auths[key]
    for k, v in auths.items():  # "https://host:port/v2/" style keys
        if server_key(k) == key:
            return v
    return None


def _from_helper(helper: str, key: str) -> AuthConfig | None:
    import subprocess

    try:
        r = subprocess.run([f"docker-credential-{helper}", "get"], input=key.encode(),
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    try:
        d = json.loads(r.stdout)
    except ValueError:
        return None
    user, secret = d.get("Username", ""), d.get("Secret", "")
    if user == "<token>":
        return AuthConfig(identitytoken=secret, serveraddress=key)
    return AuthConfig(username=user, password=secret, serveraddress=key)


def lookup(server: str) -> AuthConfig:
    """Credentials for a registry (empty if none are stored)."""
    key = server_key(server)
    for i, path in enumerate((dockyard_config_dir() / "config.json",
                              docker_config_dir() / "config.json")):
        try:
            cfg = _read(path)
        except ValueError:
            continue
        helper = (cfg.get("credHelpers") or {}).get(key) or cfg.get("credsStore")
        entry = _match(cfg.get("auths") or {}, key)
        if helper and i == 1:
            got = _from_helper(helper, key)
            if got is not None:
                return got
        if entry:
            a = AuthConfig.from_dict(entry)
            a.serveraddress = key
            if a.auth and not a.username:
                c = a.credentials()
                if c:
                    a.username, a.password = c
                a.auth = ""
            return a
    return AuthConfig(serveraddress=key)


def store(server: str, auth: AuthConfig) -> Path:
    """Save credentials for `server` in Dockyard's config.json; returns its path."""
    path = dockyard_config_dir() / "config.json"
    cfg = _read(path)
    auths = cfg.setdefault("auths", {})
    entry: dict[str, Any] = {}
    if auth.identitytoken:
        entry["auth"] = base64.b64encode(f"{auth.username}:".encode()).decode()
        entry["identitytoken"] = auth.identitytoken
    else:
        entry["auth"] = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    auths[server_key(server)] = entry
    _write(path, cfg)
    return path


def erase(server: str) -> bool:
    """Forget `server`'s credentials; False if there were none."""
    path = dockyard_config_dir() / "config.json"
    cfg = _read(path)
    auths = cfg.get("auths") or {}
    key = server_key(server)
    found = [k for k in auths if k == key or server_key(k) == key]
    if not found:
        return False
    for k in found:
        del auths[k]
    _write(path, cfg)
    return True


def _write(path: Path, cfg: dict[str, Any]) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _helper_list(helper: str) -> list[str]:
    import subprocess

    try:
        r = subprocess.run([f"docker-credential-{helper}", "list"], capture_output=True,
                           timeout=30)
        d = json.loads(r.stdout) if r.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return list(d) if isinstance(d, dict) else []


def all_credentials() -> dict[str, AuthConfig]:
    """Every stored credential by its `auths` key (docker's
    GetAllCredentials, what a build sends in X-Registry-Config): docker's
    config with its credential store and helpers, then Dockyard's over it."""
    out: dict[str, AuthConfig] = {}
    for i, path in enumerate((docker_config_dir() / "config.json",
                              dockyard_config_dir() / "config.json")):
        try:
            cfg = _read(path)
        except ValueError:
            continue
        for key, entry in (cfg.get("auths") or {}).items():
            if not isinstance(entry, dict):
                continue
            a = AuthConfig.from_dict(entry)
            c = a.credentials() if a.auth else None
            if c:
                a.username, a.password = c
            a.auth = ""
            a.serveraddress = key
            out[key] = a
        if i == 0:
            store_helper = cfg.get("credsStore")
            keys = _helper_list(store_helper) if store_helper else []
            for key in keys:
                got = _from_helper(store_helper, key)
                if got is not None:
                    out[key] = got
            for key, helper in (cfg.get("credHelpers") or {}).items():
                got = _from_helper(helper, key)
                if got is not None:
                    out[key] = got
    return out
