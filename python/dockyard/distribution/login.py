"""`docker login`: check credentials against a registry's /v2/ (Basic) or
its token server (Bearer); nothing is stored here, the client keeps them."""

from __future__ import annotations

from ..errors import Unauthorized
from . import RegistryOptions
from .auth import AuthConfig
from .client import Session
from .endpoints import normalize_server


def login(options: RegistryOptions, auth: AuthConfig) -> dict[str, str]:
    domain = normalize_server(auth.serveraddress)
    s = Session(domain, options, auth)
    s.ping()
    assert s.endpoint is not None
    url = f"{s.endpoint.base}/v2/"
    if s.challenge is not None:
        if auth.credentials() is None and not auth.identitytoken:
            raise Unauthorized(f'Get "{url}": unauthorized: authentication required')
        if s.challenge[0] == "basic":
            s.authorize([])
            with s.request("GET", "/v2/") as r:
                r.read()
                if r.status != 200:
                    raise Unauthorized(f"login attempt to {url} failed with status: "
                                       f"{r.status} {r.raw.reason}")
        else:
            # A token with no scope proves the credentials (docker does the same).
            s.authorize([])
            with s.request("GET", "/v2/") as r:
                r.read()
                if r.status == 401:
                    raise Unauthorized(f'Get "{url}": unauthorized: authentication required')
    return {"Status": "Login Succeeded", "IdentityToken": ""}
