"""TUF metadata as notary exchanges it: `{"signed": {...}, "signatures": [...]}`
envelopes, signed over the canonical JSON of `signed`; the roles (root, targets,
snapshot, timestamp, and delegations `targets/<name>`); file hashes as the
snapshot and timestamp record them; notary's default lifetimes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from . import canonical
from .errors import ValidationError
from .keys import PrivateKey, PublicKey, b64

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = "root", "targets", "snapshot", "timestamp"
RELEASES = "targets/releases"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)
TYPES = {ROOT: "Root", TARGETS: "Targets", SNAPSHOT: "Snapshot", TIMESTAMP: "Timestamp"}
LIFETIMES = {ROOT: dt.timedelta(days=3650), TARGETS: dt.timedelta(days=1095),
             SNAPSHOT: dt.timedelta(days=1095), TIMESTAMP: dt.timedelta(days=14)}


def is_delegation(role: str) -> bool:
    return role.startswith(TARGETS + "/")


def expires(role: str, now: dt.datetime) -> str:
    base = TARGETS if is_delegation(role) else role
    return canonical.go_time(now + LIFETIMES[base])


def parse(raw: bytes, role: str) -> dict[str, Any]:
    try:
        env = json.loads(raw)
        signed = env["signed"]
        if not isinstance(signed, dict) or not isinstance(env.get("signatures"), list):
            raise ValueError("malformed")
    except (ValueError, KeyError, TypeError) as e:
        raise ValidationError(f"could not parse {role} metadata: {e}") from None
    want = TYPES[TARGETS if is_delegation(role) else role]
    if signed.get("_type") != want:
        raise ValidationError(f"{role} metadata has the wrong type {signed.get('_type')!r}")
    return env


def sign(signed: dict[str, Any], signers: list[tuple[PrivateKey, str]]) -> dict[str, Any]:
    """Sign with each (key, the key ID the role lists for it: a certificate's for root)."""
    message = canonical.encode(signed)
    sigs = []
    for key, key_id in signers:
        method, sig = key.sign(message)
        sigs.append({"keyid": key_id, "method": method, "sig": b64(sig)})
    return {"signed": signed, "signatures": sigs}


def encode(env: dict[str, Any]) -> bytes:
    """An envelope as notary serialises it: Go's struct order, `signed` first (the
    server hashes its own serialisation into the snapshot, so this must match)."""
    return (b'{"signed":' + canonical.encode(env["signed"]) + b',"signatures":'
            + canonical.encode(env["signatures"]) + b"}")


def verify(env: dict[str, Any], role: str, keys: dict[str, PublicKey], keyids: list[str],
           threshold: int) -> None:
    """At least `threshold` valid signatures by distinct keys of the role."""
    message = canonical.encode(env["signed"])
    valid: set[str] = set()
    for s in env["signatures"]:
        kid = s.get("keyid") if isinstance(s, dict) else None
        if kid not in keyids or kid in valid or kid not in keys:
            continue
        try:
            sig = base64.b64decode(s.get("sig", ""))
        except ValueError:
            continue
        if keys[kid].verify(str(s.get("method", "")), sig, message):
            valid.add(kid)
    if len(valid) < max(threshold, 1):
        raise ValidationError(f"valid signatures did not meet threshold for {role}")


def check_expiry(env: dict[str, Any], role: str, now: dt.datetime) -> None:
    try:
        when = canonical.parse_time(env["signed"]["expires"])
    except (KeyError, ValueError, TypeError):
        raise ValidationError(f"{role} metadata has no valid expiry") from None
    if when < now:
        raise ValidationError(f"{role} expired at {env['signed']['expires']}")


def file_meta(raw: bytes) -> dict[str, Any]:
    return {"hashes": {"sha256": b64(hashlib.sha256(raw).digest()),
                       "sha512": b64(hashlib.sha512(raw).digest())}, "length": len(raw)}


def check_hashes(raw: bytes, meta: dict[str, Any] | None, role: str) -> None:
    """`raw` matches the length and every known hash recorded for it."""
    if not isinstance(meta, dict):
        raise ValidationError(f"no checksum for {role}")
    hashes = meta.get("hashes") or {}
    known = [(h, v) for h, v in hashes.items() if h in ("sha256", "sha512")]
    if not known:
        raise ValidationError(f"no supported checksum for {role}")
    for name, value in known:
        if b64(hashlib.new(name, raw).digest()) != value:
            raise ValidationError(f"checksum mismatch for {role}")
    if meta.get("length") not in (None, len(raw)):
        raise ValidationError(f"length mismatch for {role}")


def new_targets(now: dt.datetime, role: str) -> dict[str, Any]:
    return {"_type": "Targets", "delegations": {"keys": {}, "roles": []},
            "expires": expires(role, now), "targets": {}, "version": 0}


def role_keys(root_signed: dict[str, Any], role: str
              ) -> tuple[dict[str, PublicKey], list[str], int]:
    """A base role's keys, key IDs and threshold from root.json."""
    r = root_signed.get("roles", {}).get(role)
    if not isinstance(r, dict):
        raise ValidationError(f"root metadata has no {role} role")
    keys = {k: PublicKey.from_json(v) for k, v in root_signed.get("keys", {}).items()
            if k in r.get("keyids", [])}
    return keys, list(r.get("keyids", [])), int(r.get("threshold", 1))


def delegation_keys(parent_signed: dict[str, Any], role: dict[str, Any]
                    ) -> tuple[dict[str, PublicKey], list[str], int]:
    keyids = list(role.get("keyids", []))
    dkeys = parent_signed.get("delegations", {}).get("keys", {})
    keys = {k: PublicKey.from_json(dkeys[k]) for k in keyids if k in dkeys}
    return keys, keyids, int(role.get("threshold", 1))


def path_allowed(role: dict[str, Any], name: str) -> bool:
    return any(name.startswith(p) for p in role.get("paths") or [])
