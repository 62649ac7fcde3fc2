"""Registry credentials and the challenge/token flow.

`AuthConfig` is docker's auth object (what `X-Registry-Auth` carries,
base64url JSON). A registry says how to authenticate in `WWW-Authenticate`:
`Basic` means send the credentials on every request; `Bearer realm=...,
service=..., scope=...` means fetch a token from the realm (with the
credentials as Basic auth, or none for anonymous access) and send that.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameter


@dataclass
class AuthConfig:
    username: str = ""
    password: str = ""
    auth: str = ""            # base64 of "username:password" (config.json's form)
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""   # an OAuth refresh token
    registrytoken: str = ""   # a bearer token to use as is

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuthConfig":
        low = {k.lower(): v for k, v in d.items() if isinstance(v, str)}
        return cls(**{k: low.get(k, "") for k in cls.__dataclass_fields__})

    @classmethod
    def from_header(cls, value: str | None) -> "AuthConfig":
        """Decode `X-Registry-Auth` (base64url JSON; padding optional)."""
        if not value:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            d = json.loads(raw)
        except (binascii.Error, ValueError) as e:
            raise InvalidParameter(f"invalid X-Registry-Auth header: {e}") from None
        return cls.from_dict(d) if isinstance(d, dict) else cls()

    def to_header(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if v}
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode()

    def credentials(self) -> tuple[str, str] | None:
        if self.username or self.password:
            return self.username, self.password
        if self.auth:
            try:
                user, _, pw = base64.b64decode(self.auth).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return user, pw
        return None

    def basic_header(self) -> str | None:
        c = self.credentials()
        if c is None:
            return None
        return "Basic " + base64.b64encode(f"{c[0]}:{c[1]}".encode()).decode()


_SCHEME = re.compile(r"[\s,]*([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)")
_PARAM = re.compile(r'[\s,]*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """`WWW-Authenticate` values: [(scheme lowercased, params)]."""
    out: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while m := _SCHEME.match(header, pos):
        pos = m.end()
        params: dict[str, str] = {}
        while pm := _PARAM.match(header, pos):
            quoted, bare = pm.group(2), pm.group(3)
            params[pm.group(1).lower()] = (re.sub(r"\\(.)", r"\1", quoted)
                                           if quoted is not None else bare)
            pos = pm.end()
        out.append((m.group(1).lower(), params))
    return out


def repo_scope(path: str, actions: tuple[str, ...]) -> str:
    return f"repository:{path}:{','.join(actions)}"
