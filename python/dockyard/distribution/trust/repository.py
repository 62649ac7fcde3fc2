"""One GUN's trust data (notary's client.Repository as docker's CLI uses it):
update() fetches and verifies the chain root -> timestamp -> snapshot -> targets
-> delegations (the cached root.json is the trust anchor; the first one is
trusted on first use after its certificate checks), and caches what it fetched
under `<trust>/tuf/<gun>/metadata/`. The queries behind `trust inspect`, and the
changes behind sign, revoke and signer add/remove, which publish() signs and
uploads (the server signs snapshot and timestamp)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metadata as md
from .errors import (KeyNotFound, MetaNotFound, NetworkError, NoSuchTarget, RepositoryNotExist,
                     ServerUnavailable, TrustError, ValidationError)
from .keys import (KeyStore, PrivateKey, PublicKey, check_root_certificate, private_dirs,
                   root_certificate)
from .server import NotaryServer


@dataclass
class Target:
    name: str
    hashes: dict[str, str]  # algorithm -> base64
    length: int

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any]) -> Target:
        return cls(name, dict(d.get("hashes") or {}), int(d.get("length", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"hashes": dict(self.hashes), "length": self.length}

    @property
    def sha256_hex(self) -> str:
        return base64.b64decode(self.hashes.get("sha256", "")).hex()


@dataclass
class DelegationRole:
    name: str
    keyids: list[str]
    threshold: int
    paths: list[str]


@dataclass
class RoleInfo:
    name: str
    keyids: list[str]
    threshold: int
    signatures: list[dict[str, Any]] = field(default_factory=list)


class Repository:
    def __init__(self, gun: str, server: NotaryServer, trust_dir: Path, keys: KeyStore) -> None:
        self.gun = gun
        self.server = server
        self.keys = keys
        self.cache = trust_dir / "tuf" / gun / "metadata"
        self.now = dt.datetime.now(dt.timezone.utc)
        self.root: dict[str, Any] | None = None
        self.targets: dict[str, Any] | None = None
        self.snapshot: dict[str, Any] | None = None
        # delegated targets by role name, in the order of the walk (absent ones left out)
        self.delegated: dict[str, dict[str, Any]] = {}
        self.dirty: list[str] = []
        # what notary logs as warnings, for the CLI to show: while updating (notary
        # updates again for most calls, and warns each time), and while changing
        self.warnings: list[str] = []
        self.change_warnings: list[str] = []

    # --- the cache ------------------------------------------------------------------

    def _cached(self, role: str) -> bytes | None:
        try:
            return (self.cache / f"{role}.json").read_bytes()
        except OSError:
            return None

    def _store(self, role: str, raw: bytes) -> None:
        path = self.cache / f"{role}.json"
        private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)

    # --- update -----------------------------------------------------------------------

    def update(self) -> None:
        """Fetch and verify the repository; RepositoryNotExist when the server has
        none. Cached metadata whose hashes the newer role records is used as is;
        with the server unreachable, the cached timestamp stands in (with
        notary's warning)."""
        self.warnings = []
        # notary makes the repository's cache and (here unused) changelist first
        private_dirs(self.cache)
        private_dirs(self.cache.parent / "changelist")
        fetched: dict[str, bytes] = {}
        root_raw = self._cached(md.ROOT)
        if root_raw is not None:
            # the cached root pins trust: it must verify, else nothing does; once
            # expired, the server's must be signed by its keys too
            root = self._checked_root(root_raw, expiry=False)
            try:
                md.check_expiry(root, md.ROOT, self.now)
            except ValidationError:
                root_raw, root = self._rotated_root(root)
                fetched[md.ROOT] = root_raw
        else:  # trust on first use
            try:
                root_raw = self.server.get_meta(self.gun, md.ROOT)
            except MetaNotFound:
                raise RepositoryNotExist(self.server.url, self.gun) from None
            root = self._checked_root(root_raw)
            fetched[md.ROOT] = root_raw
        try:
            ts_raw = self.server.get_meta(self.gun, md.TIMESTAMP)
            fetched[md.TIMESTAMP] = ts_raw
        except (MetaNotFound, NetworkError, ServerUnavailable) as e:
            cached = self._cached(md.TIMESTAMP)
            if cached is None:
                if isinstance(e, MetaNotFound):
                    raise RepositoryNotExist(self.server.url, self.gun) from None
                raise
            self.warnings.append("Error while downloading remote metadata, using cached "
                                 "timestamp - this might not be the latest version available "
                                 "remotely")
            ts_raw = cached
        ts = md.parse(ts_raw, md.TIMESTAMP)
        self._verify_base(ts, md.TIMESTAMP, root)
        snap_raw = self._load(md.SNAPSHOT, ts["signed"].get("meta", {}).get(md.SNAPSHOT), fetched)
        snap = md.parse(snap_raw, md.SNAPSHOT)
        self._verify_base(snap, md.SNAPSHOT, root)
        meta = snap["signed"].get("meta", {})
        root_meta = meta.get(md.ROOT)
        if root_meta is not None:
            try:
                md.check_hashes(root_raw, root_meta, md.ROOT)
            except ValidationError:  # the root was rotated
                root_raw, root = self._rotated_root(root)
                md.check_hashes(root_raw, root_meta, md.ROOT)
                fetched[md.ROOT] = root_raw
        self.root = root
        tg = md.parse(self._load(md.TARGETS, meta.get(md.TARGETS), fetched), md.TARGETS)
        self._verify_base(tg, md.TARGETS, root)
        self.targets = tg
        self.snapshot = snap
        # delegations, breadth first in the order each parent lists them
        queue: list[tuple[dict[str, Any], dict[str, Any]]] = [
            (tg["signed"], r) for r in tg["signed"].get("delegations", {}).get("roles", [])]
        while queue:
            parent, role = queue.pop(0)
            name = role.get("name", "")
            if name not in meta or name in self.delegated:
                continue
            env = md.parse(self._load(name, meta[name], fetched), name)
            try:
                md.verify(env, name, *md.delegation_keys(parent, role))
                md.check_expiry(env, name, self.now)
            except ValidationError as e:  # notary leaves the role out, with a warning
                self.warnings.append(f"Error getting {name}: {e}")
                continue
            self.delegated[name] = env
            queue += [(env["signed"], r)
                      for r in env["signed"].get("delegations", {}).get("roles", [])]
        for role, raw in fetched.items():
            self._store(role, raw)

    def _load(self, role: str, meta: dict[str, Any] | None, fetched: dict[str, bytes]) -> bytes:
        """The role's metadata matching `meta` (the hashes the parent role
        records): the cached copy if it does, else the server's."""
        cached = self._cached(role)
        if cached is not None:
            try:
                md.check_hashes(cached, meta, role)
                return cached
            except ValidationError:
                pass
        raw = self.server.get_meta(self.gun, role)
        md.check_hashes(raw, meta, role)
        fetched[role] = raw
        return raw

    def _checked_root(self, raw: bytes, expiry: bool = True) -> dict[str, Any]:
        """A root signed by its own keys, certificates for this GUN."""
        root = md.parse(raw, md.ROOT)
        keys, keyids, threshold = md.role_keys(root["signed"], md.ROOT)
        pinning = "could not validate the path to a trusted root: "  # notary's ErrValidationFail
        try:
            for kid in keyids:
                if kid in keys:
                    check_root_certificate(keys[kid], self.gun, self.now)
        except ValidationError:
            raise TrustError(pinning + "unable to retrieve valid leaf certificates") from None
        try:
            md.verify(root, md.ROOT, keys, keyids, threshold)
        except ValidationError:
            raise TrustError(pinning + "failed to validate integrity of roots") from None
        if expiry:
            md.check_expiry(root, md.ROOT, self.now)
        return root

    def _rotated_root(self, old: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """The server's root, which must satisfy the old root's keys as well as its own."""
        raw = self.server.get_meta(self.gun, md.ROOT)
        md.verify(md.parse(raw, md.ROOT), md.ROOT, *md.role_keys(old["signed"], md.ROOT))
        return raw, self._checked_root(raw)

    def _verify_base(self, env: dict[str, Any], role: str, root: dict[str, Any]) -> None:
        md.verify(env, role, *md.role_keys(root["signed"], role))
        md.check_expiry(env, role, self.now)

    # --- queries --------------------------------------------------------------------------

    def _walk(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """(role name, its signed targets, its delegation entry; None for targets),
        targets first, then the delegations that have valid metadata."""
        assert self.targets is not None
        yield md.TARGETS, self.targets["signed"], None
        for _, entry in self._all_delegation_entries():
            env = self.delegated.get(entry.get("name", ""))
            if env is not None:
                yield entry["name"], env["signed"], entry

    def targets_by_name(self, name: str) -> list[tuple[str, Target]]:
        """(role, target) for `name` in every role (all targets when name is ""),
        in walk order; NoSuchTarget when none has it."""
        found = []
        for role, signed, entry in self._walk():
            for tname, t in (signed.get("targets") or {}).items():
                if name and tname != name:
                    continue
                if entry is None or md.path_allowed(entry, tname):
                    found.append((role, Target.from_json(tname, t)))
        if not found:
            raise NoSuchTarget(name)
        return found

    def list_targets(self, *roles: str) -> list[tuple[str, Target]]:
        """Targets of the first of `roles` that has each name (notary's ListTargets)."""
        out: dict[str, tuple[str, Target]] = {}
        for role in roles:
            for tname, t in ((self._signed(role) or {}).get("targets") or {}).items():
                out.setdefault(tname, (role, Target.from_json(tname, t)))
        return list(out.values())

    def target_by_name(self, name: str, *roles: str) -> tuple[str, Target]:
        """The target in the first of `roles` that has it (notary's GetTargetByName)."""
        for role in roles:
            targets = (self._signed(role) or {}).get("targets") or {}
            if name in targets:
                return role, Target.from_json(name, targets[name])
        raise NoSuchTarget(name)

    def base_roles(self) -> list[RoleInfo]:
        """root, targets, snapshot, timestamp from root.json (notary's ListRoles)."""
        assert self.root is not None
        out = []
        for name in md.BASE_ROLES:
            r = self.root["signed"].get("roles", {}).get(name, {})
            out.append(RoleInfo(name, list(r.get("keyids", [])), int(r.get("threshold", 1))))
        return out

    def delegation_roles(self) -> list[DelegationRole]:
        """Every delegation, with canonical key IDs (a certificate's bare key's)."""
        out = []
        for parent, r in self._all_delegation_entries():
            dkeys = parent.get("delegations", {}).get("keys", {})
            ids = [PublicKey.from_json(dkeys[k]).canonical_id if k in dkeys else k
                   for k in r.get("keyids", [])]
            out.append(DelegationRole(r.get("name", ""), ids, int(r.get("threshold", 1)),
                                      list(r.get("paths") or [])))
        return out

    def role_signatures(self, role: str) -> list[dict[str, Any]]:
        env = self.delegated.get(role)
        return list(env["signatures"]) if env else []

    def role_threshold(self, role: str) -> int:
        for r in self.delegation_roles():
            if r.name == role:
                return r.threshold
        return 1

    def key_ids_available(self) -> set[str]:
        return {k.id for k in self.keys.list()}

    # --- changes ---------------------------------------------------------------------------

    def _signed(self, role: str) -> dict[str, Any] | None:
        if role == md.TARGETS:
            return self.targets["signed"] if self.targets else None
        env = self.delegated.get(role)
        return env["signed"] if env else None

    def _mark(self, role: str) -> None:
        if role not in self.dirty:
            self.dirty.append(role)

    def initialize(self, root_key_id: str) -> None:
        """A new repository: root (the root key's certificate), a new targets key,
        the server's snapshot and timestamp keys."""
        root_key = self.keys.get(root_key_id)
        cert = root_certificate(root_key, self.gun, self.now)
        targets_key = PrivateKey.generate()
        self.keys.add(targets_key, md.TARGETS, self.gun)
        snapshot = self.server.get_key(self.gun, md.SNAPSHOT)
        timestamp = self.server.get_key(self.gun, md.TIMESTAMP)
        keys = {k.id: k for k in (cert, targets_key.public, snapshot, timestamp)}
        roles = {md.ROOT: cert.id, md.TARGETS: targets_key.id, md.SNAPSHOT: snapshot.id,
                 md.TIMESTAMP: timestamp.id}
        signed = {"_type": "Root", "consistent_snapshot": False,
                  "expires": md.expires(md.ROOT, self.now),
                  "keys": {k: v.to_json() for k, v in keys.items()},
                  "roles": {r: {"keyids": [kid], "threshold": 1} for r, kid in roles.items()},
                  "version": 0}  # publish() counts from here
        self.root = {"signed": signed, "signatures": []}
        self.targets = {"signed": md.new_targets(self.now, md.TARGETS), "signatures": []}
        self.delegated, self.snapshot = {}, None
        self._mark(md.ROOT)
        self._mark(md.TARGETS)

    def add_delegation(self, role: str, keys: list[PublicKey], paths: list[str]) -> None:
        assert self.targets is not None
        d = self.targets["signed"].setdefault("delegations", {"keys": {}, "roles": []})
        dkeys, roles = d.setdefault("keys", {}), d.setdefault("roles", [])
        for k in keys:
            dkeys[k.id] = k.to_json()
        entry = next((r for r in roles if r.get("name") == role), None)
        if entry is None:
            roles.append({"keyids": [k.id for k in keys], "name": role, "paths": list(paths),
                          "threshold": 1})
        else:
            entry["keyids"] += [k.id for k in keys if k.id not in entry["keyids"]]
            entry["paths"] = list(entry.get("paths") or []) + [
                p for p in paths if p not in (entry.get("paths") or [])]
        self._mark(md.TARGETS)

    def _warn_threshold(self, role: dict[str, Any]) -> None:
        if len(role.get("keyids", [])) < int(role.get("threshold", 1)):
            self.change_warnings.append(f"role {role.get('name')} has fewer keys than its threshold of "
                                 f"{role.get('threshold', 1)}; it will not be usable until keys "
                                 "are added to it")

    def remove_delegation_keys(self, role: str, keyids: list[str]) -> None:
        assert self.targets is not None
        for r in self.targets["signed"].get("delegations", {}).get("roles", []):
            if r.get("name") == role:
                r["keyids"] = [k for k in r["keyids"] if k not in keyids]
                self._warn_threshold(r)
        self._prune_keys()

    def remove_delegation(self, role: str) -> None:
        assert self.targets is not None
        d = self.targets["signed"].get("delegations", {})
        d["roles"] = [r for r in d.get("roles", []) if r.get("name") != role]
        self.delegated.pop(role, None)
        if self._prune_keys():  # notary purges keys no role uses, then checks every role
            for r in d.get("roles", []):
                self._warn_threshold(r)

    def _prune_keys(self) -> bool:
        """Drop delegation keys no role lists; True if there were any."""
        assert self.targets is not None
        d = self.targets["signed"].get("delegations", {})
        used = {k for r in d.get("roles", []) for k in r.get("keyids", [])}
        before = len(d.get("keys", {}))
        d["keys"] = {k: v for k, v in d.get("keys", {}).items() if k in used}
        self._mark(md.TARGETS)
        return len(d["keys"]) < before

    def _editable(self, role: str) -> dict[str, Any]:
        signed = self._signed(role)
        if signed is None:
            if not md.is_delegation(role):
                raise TrustError(f"no metadata for {role}")
            self.delegated[role] = {"signed": md.new_targets(self.now, role), "signatures": []}
            signed = self.delegated[role]["signed"]
        return signed

    def add_target(self, target: Target, roles: list[str]) -> None:
        for role in roles:
            self._editable(role).setdefault("targets", {})[target.name] = target.to_json()
            self._mark(role)

    def remove_target(self, name: str, roles: list[str]) -> None:
        for role in roles:
            signed = self._editable(role)
            if name in (signed.get("targets") or {}):
                del signed["targets"][name]
            self._mark(role)

    def signable_roles(self, target_name: str) -> list[str]:
        """docker's GetSignableRoles: targets when there are no delegations, else
        every direct child of targets whose paths allow the name and for which a
        key is at hand."""
        roles = self.delegation_roles()
        if not roles:
            return [md.TARGETS]
        have = self.key_ids_available()
        out = [r.name for r in roles
               if r.name.count("/") == 1 and any(target_name.startswith(p) for p in r.paths)
               and any(k in have for k in r.keyids)]
        if not out:
            raise TrustError("no valid signing keys for delegation roles")
        return out

    # --- publish ---------------------------------------------------------------------------

    def _signers(self, keys: dict[str, PublicKey], keyids: list[str], role: str
                 ) -> list[tuple[PrivateKey, str]]:
        out = []
        for kid in keyids:
            key = keys.get(kid)
            canonical_id = key.canonical_id if key is not None else kid
            if self.keys.has(canonical_id):
                out.append((self.keys.get(canonical_id), kid))
        if not out:
            raise KeyNotFound("could not find necessary signing keys, at least one of these "
                              "keys must be available: " + ", ".join(keyids))
        return out

    def publish(self) -> None:
        """Sign what changed (a version up, a fresh expiry) and upload it; the
        server signs a new snapshot and timestamp."""
        assert self.root is not None and self.targets is not None
        files: dict[str, bytes] = {}
        for role in self.dirty:
            if role == md.ROOT:
                env = self.root
                signers = self._signers(*md.role_keys(env["signed"], md.ROOT)[:2], md.ROOT)
            elif role == md.TARGETS:
                env = self.targets
                signers = self._signers(*md.role_keys(self.root["signed"], md.TARGETS)[:2], role)
            else:
                env = self.delegated[role]
                entry = next((pe for pe in self._all_delegation_entries()
                              if pe[1].get("name") == role), None)
                if entry is None:
                    raise TrustError(f"tuf: invalid role {role}")
                keys, keyids, _ = md.delegation_keys(*entry)
                signers = self._signers(keys, keyids, role)
            signed = copy.deepcopy(env["signed"])
            signed["version"] = int(signed.get("version", 0)) + 1
            signed["expires"] = md.expires(role, self.now)
            new = md.sign(signed, signers)
            if role == md.ROOT:
                self.root = new
            elif role == md.TARGETS:
                self.targets = new
            else:
                self.delegated[role] = new
            files[role] = md.encode(new)
        snapshot = self._client_snapshot(files) if files else None
        if snapshot is not None:
            files[md.SNAPSHOT] = snapshot
        if files:
            self.server.publish(self.gun, files)
            for role, raw in files.items():
                self._store(role, raw)
        self.dirty = []

    def _client_snapshot(self, files: dict[str, bytes]) -> bytes | None:
        """A new snapshot recording `files`, when the snapshot key is ours (a
        repository initialised by notary's CLI); None when the server signs it."""
        assert self.root is not None
        keys, keyids, _ = md.role_keys(self.root["signed"], md.SNAPSHOT)
        if not any(self.keys.has(keys[k].canonical_id) for k in keyids if k in keys):
            return None
        if self.snapshot is not None:
            signed = copy.deepcopy(self.snapshot["signed"])
        else:
            signed = {"_type": "Snapshot", "meta": {}, "version": 0}
        for role, raw in files.items():
            signed["meta"][role] = md.file_meta(raw)
        signed["version"] = int(signed.get("version", 0)) + 1
        signed["expires"] = md.expires(md.SNAPSHOT, self.now)
        self.snapshot = md.sign(signed, self._signers(keys, keyids, md.SNAPSHOT))
        return md.encode(self.snapshot)

    def _all_delegation_entries(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(parent's signed targets, delegation entry) for every delegation."""
        out, seen = [], set()
        parents = [self.targets["signed"]] if self.targets else []
        while parents:
            p = parents.pop(0)
            for r in p.get("delegations", {}).get("roles", []):
                name = r.get("name", "")
                if name in seen:
                    continue
                seen.add(name)
                out.append((p, r))
                if name in self.delegated:
                    parents.append(self.delegated[name]["signed"])
        return out
