"""The `swarm` command group (docker's `swarm` commands): init, join, the join
tokens, leave, the unlock key and unlock, update, and the root CA, over the
Engine API. Dockyard's own daemon is in no swarm and answers these as such a
dockerd does; against a dockerd they manage its swarm as docker does."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from .common import call, client, fail
from .swarmkit import check_args, usage_fail

app = typer.Typer(help="Manage Swarm", no_args_is_help=True, add_completion=False)

DEFAULT_LISTEN = "0.0.0.0:2377"
AVAILABILITIES = ("active", "pause", "drain")
INIT_USAGE = "[OPTIONS]"


# --- flag values ----------------------------------------------------------------

def _duration(cmd: str, usage: str, flag: str, v: str) -> int:
    from ..units import parse_go_duration

    try:
        return parse_go_duration(v)
    except ValueError as e:
        usage_fail(cmd, usage, f'invalid argument "{v}" for "--{flag}" flag: {e}')


def _int(cmd: str, usage: str, flag: str, v: str, unsigned: bool = False, bits: int = 64) -> int:
    fn = "ParseUint" if unsigned else "ParseInt"
    signs = v.count("-") + v.count("+")
    ok = v.isdigit() if unsigned else (v.lstrip("+-").isdigit() and signs <= 1)
    if ok:
        n = int(v)
        lim = 1 << (bits if unsigned else bits - 1)
        if (0 <= n < lim) if unsigned else (-lim <= n < lim):
            return n
        usage_fail(cmd, usage, f'invalid argument "{v}" for "--{flag}" flag: strconv.{fn}: '
                               f'parsing "{v}": value out of range')
    usage_fail(cmd, usage, f'invalid argument "{v}" for "--{flag}" flag: strconv.{fn}: '
                           f'parsing "{v}": invalid syntax')


def _bool(cmd: str, usage: str, flag: str, v: str | None) -> bool | None:
    """strconv.ParseBool, for `--flag=false`."""
    if v is None:
        return None
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    usage_fail(cmd, usage, f'invalid argument "{v}" for "--{flag}" flag: strconv.ParseBool: '
                           f'parsing "{v}": invalid syntax')


def _listen_addr(cmd: str, usage: str, v: str | None) -> str:
    """NodeAddrOption (opts.ParseTCPAddr against 0.0.0.0:2377) as host:port."""
    if v is None:
        return DEFAULT_LISTEN
    addr = v if "://" in v else "tcp://" + v
    if not addr.startswith("tcp://"):
        usage_fail(cmd, usage, f'invalid argument "{v}" for "--listen-addr" flag: '
                               f"Invalid proto, expected tcp: {v}")
    hostport = addr[len("tcp://"):].split("/", 1)[0]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        host, port = f"[{host}]", rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
        if ":" in port:
            usage_fail(cmd, usage, f'invalid argument "{v}" for "--listen-addr" flag: parse '
                                   f'"{addr}": invalid port ":{port.rsplit(":", 1)[1]}" after host')
    if port and not port.isdigit():
        usage_fail(cmd, usage, f'invalid argument "{v}" for "--listen-addr" flag: parse '
                               f'"{addr}": invalid port ":{port}" after host')
    return f"{host or '0.0.0.0'}:{port or '2377'}"


def _cidrs(cmd: str, usage: str, values: list[str]) -> list[str]:
    """pflag's IPNetSlice: comma-separated CIDRs, each as its network."""
    import ipaddress

    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            try:
                out.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                usage_fail(cmd, usage, f'invalid argument "{v}" for "--default-addr-pool" '
                                       f"flag: invalid string being converted to CIDR: {part}")
    return out


def _external_ca(cmd: str, usage: str, v: str) -> dict[str, Any]:
    """parseExternalCA: protocol=cfssl,url=...[,cacert=FILE][,key=value]."""
    import csv

    def bad(msg: str) -> None:
        usage_fail(cmd, usage, f'invalid argument "{v}" for "--external-ca" flag: {msg}')

    fields = next(csv.reader([v]), [])
    ca: dict[str, Any] = {"Protocol": "", "URL": "", "Options": {}}
    seen = set()
    for f in fields:
        k, eq, val = f.partition("=")
        if not eq:
            bad(f"invalid field '{f}' must be a key=value pair")
        key = k.lower()
        if key == "protocol":
            seen.add(key)
            if val.lower() != "cfssl":
                bad(f"unrecognized external CA protocol {val}")
            ca["Protocol"] = "cfssl"
        elif key == "url":
            seen.add(key)
            ca["URL"] = val
        elif key == "cacert":
            try:
                pem = open(val).read()
            except OSError as e:
                bad(f"unable to read CA cert for external CA: open {val}: "
                    f"{(e.strerror or '').lower()}")
            if "-----BEGIN" not in pem:
                bad("CA cert for external CA must be in PEM format")
            ca["CACert"] = pem
        else:
            ca["Options"][k] = val
    if "protocol" not in seen:
        bad("the external-ca option needs a protocol= parameter")
    if "url" not in seen:
        bad("the external-ca option needs a url= parameter")
    return ca


def _merge_spec(spec: dict[str, Any], cmd: str, usage: str, *,
                task_history_limit: str | None = None, dispatcher_heartbeat: str | None = None,
                max_snapshots: str | None = None, snapshot_interval: str | None = None,
                autolock: bool | None = None, cert_expiry: str | None = None,
                external_ca: list[str] | None = None, ca_cert: str | None = None) -> None:
    """swarmOptions.mergeSwarmSpec: only the flags given change the spec."""
    if task_history_limit is not None:
        spec.setdefault("Orchestration", {})["TaskHistoryRetentionLimit"] = _int(
            cmd, usage, "task-history-limit", task_history_limit)
    if dispatcher_heartbeat is not None:
        spec.setdefault("Dispatcher", {})["HeartbeatPeriod"] = _duration(
            cmd, usage, "dispatcher-heartbeat", dispatcher_heartbeat)
    if max_snapshots is not None:
        spec.setdefault("Raft", {})["KeepOldSnapshots"] = _int(
            cmd, usage, "max-snapshots", max_snapshots, unsigned=True)
    if snapshot_interval is not None:
        spec.setdefault("Raft", {})["SnapshotInterval"] = _int(
            cmd, usage, "snapshot-interval", snapshot_interval, unsigned=True)
    if autolock is not None:
        spec.setdefault("EncryptionConfig", {})["AutoLockManagers"] = autolock
    _merge_ca(spec, cmd, usage, cert_expiry, external_ca, ca_cert)


def _merge_ca(spec: dict[str, Any], cmd: str, usage: str, cert_expiry: str | None,
              external_ca: list[str] | None, ca_cert: str | None) -> None:
    if cert_expiry is not None:
        spec.setdefault("CAConfig", {})["NodeCertExpiry"] = _duration(
            cmd, usage, "cert-expiry", cert_expiry)
    if external_ca is not None:
        cas = [_external_ca(cmd, usage, v) for v in external_ca]
        for ca in cas:
            if not ca.get("CACert") and ca_cert is not None:
                ca["CACert"] = ca_cert
        spec.setdefault("CAConfig", {})["ExternalCAs"] = cas


def _availability(v: str | None) -> str | None:
    if v is None:
        return None
    if v.lower() not in AVAILABILITIES:
        fail(f'invalid availability "{v}", only active, pause and drain are supported')
    return v.lower()


# --- output shared by several commands ----------------------------------------

def _print_join_command(node_id: str, worker: bool, manager: bool) -> None:
    from .client import path_quote

    node = call(lambda: client().get_json(f"/nodes/{path_quote(node_id)}"))
    sw = call(lambda: client().get_json("/swarm"))
    ms = node.get("ManagerStatus")
    if not ms:
        return
    tokens = sw.get("JoinTokens") or {}
    for role, want in (("worker", worker), ("manager", manager)):
        if want:
            sys.stdout.write(f"To add a {role} to this swarm, run the following command:\n\n"
                             f"    docker swarm join --token {tokens.get(role.title(), '')} "
                             f"{ms.get('Addr', '')}\n\n")


def _print_unlock_command(key: str) -> None:
    if key:
        sys.stdout.write("To unlock a swarm manager after it restarts, run the `docker swarm "
                         f"unlock`\ncommand and provide the following key:\n\n    {key}\n\n"
                         "Remember to store this key in a password manager, since without "
                         "it you\nwill not be able to restart the manager.\n")


def _unlock_key(wrap: bool = True) -> str:
    from .client import APIError, ConnectError

    try:
        return client().get_json("/swarm/unlockkey").get("UnlockKey", "")
    except (APIError, ConnectError) as e:
        from .swarmkit import error_text

        fail(("could not fetch unlock key: " if wrap else "") + error_text(e))


# --- commands ---------------------------------------------------------------------

# `--autolock` alone or `--autolock=false` (pflag's optional bool value), which
# Typer's options can't express: read from the arguments left over.
LOOSE = {"ignore_unknown_options": True, "allow_extra_args": True}


def _autolock(ctx: typer.Context, cmd: str) -> bool | None:
    lock = None
    for a in ctx.args:
        if a == "--autolock":
            lock = True
        elif a.startswith("--autolock="):
            lock = _bool(cmd, "[OPTIONS]", "autolock", a.split("=", 1)[1])
        elif a.startswith("-"):
            usage_fail(cmd, "[OPTIONS]", f"unknown flag: {a.split('=', 1)[0]}")
        else:
            check_args(cmd, "[OPTIONS]", [a], 0, 0)
    return lock


@app.command("init", context_settings=LOOSE)
def init(ctx: typer.Context,
         advertise_addr: str = typer.Option("", "--advertise-addr"),
         listen_addr: Optional[str] = typer.Option(None, "--listen-addr"),
         data_path_addr: str = typer.Option("", "--data-path-addr"),
         data_path_port: Optional[str] = typer.Option(None, "--data-path-port"),
         force_new_cluster: bool = typer.Option(False, "--force-new-cluster"),
         availability: Optional[str] = typer.Option(None, "--availability"),
         default_addr_pool: Optional[List[str]] = typer.Option(None, "--default-addr-pool"),
         pool_mask: Optional[str] = typer.Option(None, "--default-addr-pool-mask-length"),
         task_history_limit: Optional[str] = typer.Option(None, "--task-history-limit"),
         dispatcher_heartbeat: Optional[str] = typer.Option(None, "--dispatcher-heartbeat"),
         max_snapshots: Optional[str] = typer.Option(None, "--max-snapshots"),
         snapshot_interval: Optional[str] = typer.Option(None, "--snapshot-interval"),
         cert_expiry: Optional[str] = typer.Option(None, "--cert-expiry"),
         external_ca: Optional[List[str]] = typer.Option(None, "--external-ca")) -> None:
    """Initialize a swarm"""
    cmd = "swarm init"
    lock = _autolock(ctx, cmd)
    listen = _listen_addr(cmd, INIT_USAGE, listen_addr)
    port = _int(cmd, INIT_USAGE, "data-path-port", data_path_port, True, 32) \
        if data_path_port is not None else 0
    mask = _int(cmd, INIT_USAGE, "default-addr-pool-mask-length", pool_mask, True, 32) \
        if pool_mask is not None else 24
    pools = _cidrs(cmd, INIT_USAGE, default_addr_pool or [])
    spec: dict[str, Any] = {}
    _merge_spec(spec, cmd, INIT_USAGE, task_history_limit=task_history_limit,
                dispatcher_heartbeat=dispatcher_heartbeat, max_snapshots=max_snapshots,
                snapshot_interval=snapshot_interval, autolock=lock,
                cert_expiry=cert_expiry, external_ca=external_ca)
    req: dict[str, Any] = {
        "ListenAddr": listen, "AdvertiseAddr": advertise_addr, "DataPathAddr": data_path_addr,
        "DataPathPort": port, "DefaultAddrPool": pools, "ForceNewCluster": force_new_cluster,
        "Spec": spec, "AutoLockManagers": bool(lock), "SubnetSize": mask,
        "Availability": _availability(availability) or ""}
    from .client import APIError, ConnectError

    try:
        node_id = client().post_json("/swarm/init", None, req)
    except APIError as e:
        msg = f"Error response from daemon: {e.message}"
        if ("could not choose an IP address to advertise" in msg
                or "could not find the system's IP address" in msg):
            msg += " - specify one with --advertise-addr"
        fail(msg)
    except ConnectError as e:
        fail(str(e))
    print(f"Swarm initialized: current node ({node_id}) is now a manager.\n")
    _print_join_command(node_id, True, False)
    print("To add a manager to this swarm, run 'docker swarm join-token manager' and follow "
          "the instructions.")
    if lock:
        _print_unlock_command(_unlock_key())


@app.command("join")
def join(args: Optional[List[str]] = typer.Argument(None, metavar="HOST:PORT"),
         listen_addr: Optional[str] = typer.Option(None, "--listen-addr"),
         advertise_addr: str = typer.Option("", "--advertise-addr"),
         data_path_addr: str = typer.Option("", "--data-path-addr"),
         token: str = typer.Option("", "--token"),
         availability: Optional[str] = typer.Option(None, "--availability")) -> None:
    """Join a swarm as a node and/or manager"""
    (remote,) = check_args("swarm join", "[OPTIONS] HOST:PORT", args, 1, 1)
    req = {"ListenAddr": _listen_addr("swarm join", "[OPTIONS] HOST:PORT", listen_addr),
           "AdvertiseAddr": advertise_addr, "DataPathAddr": data_path_addr,
           "RemoteAddrs": [remote], "JoinToken": token,
           "Availability": _availability(availability) or ""}
    call(lambda: client().post_json("/swarm/join", None, req))
    info = call(lambda: client().get_json("/info"))
    role = "manager" if (info.get("Swarm") or {}).get("ControlAvailable") else "worker"
    print(f"This node joined a swarm as a {role}.")


@app.command("join-token")
def join_token(args: Optional[List[str]] = typer.Argument(None, metavar="(worker|manager)"),
               rotate: bool = typer.Option(False, "--rotate"),
               quiet: bool = typer.Option(False, "-q", "--quiet")) -> None:
    """Manage join tokens"""
    (role,) = check_args("swarm join-token", "[OPTIONS] (worker|manager)", args, 1, 1)
    worker, manager = role == "worker", role == "manager"
    if not (worker or manager):
        fail(f"unknown role {role}")
    if rotate:
        sw = call(lambda: client().get_json("/swarm"))
        call(lambda: client().post_json(
            "/swarm/update", {"version": (sw.get("Version") or {}).get("Index", 0),
                              "rotateWorkerToken": worker, "rotateManagerToken": manager,
                              "rotateManagerUnlockKey": False}, sw.get("Spec") or {}))
        if not quiet:
            print(f"Successfully rotated {role} join token.\n")
    sw = call(lambda: client().get_json("/swarm"))
    if quiet:
        print((sw.get("JoinTokens") or {}).get("Worker" if worker else "Manager", ""))
        return
    info = call(lambda: client().get_json("/info"))
    _print_join_command((info.get("Swarm") or {}).get("NodeID", ""), worker, manager)


@app.command("unlock-key")
def unlock_key(args: Optional[List[str]] = typer.Argument(None, hidden=True),
               rotate: bool = typer.Option(False, "--rotate"),
               quiet: bool = typer.Option(False, "-q", "--quiet")) -> None:
    """Manage the unlock key"""
    check_args("swarm unlock-key", "[OPTIONS]", args, 0, 0)
    if rotate:
        sw = call(lambda: client().get_json("/swarm"))
        spec = sw.get("Spec") or {}
        if not (spec.get("EncryptionConfig") or {}).get("AutoLockManagers"):
            fail("cannot rotate because autolock is not turned on")
        call(lambda: client().post_json(
            "/swarm/update", {"version": (sw.get("Version") or {}).get("Index", 0),
                              "rotateWorkerToken": False, "rotateManagerToken": False,
                              "rotateManagerUnlockKey": True}, spec))
        if not quiet:
            print("Successfully rotated manager unlock key.")
    key = _unlock_key()
    if not key:
        fail("no unlock key is set")
    if quiet:
        print(key)
        return
    _print_unlock_command(key)


@app.command("update", context_settings=LOOSE)
def update(ctx: typer.Context,
           task_history_limit: Optional[str] = typer.Option(None, "--task-history-limit"),
           dispatcher_heartbeat: Optional[str] = typer.Option(None, "--dispatcher-heartbeat"),
           max_snapshots: Optional[str] = typer.Option(None, "--max-snapshots"),
           snapshot_interval: Optional[str] = typer.Option(None, "--snapshot-interval"),
           cert_expiry: Optional[str] = typer.Option(None, "--cert-expiry"),
           external_ca: Optional[List[str]] = typer.Option(None, "--external-ca")) -> None:
    """Update the swarm"""
    given = dict(task_history_limit=task_history_limit,
                 dispatcher_heartbeat=dispatcher_heartbeat, max_snapshots=max_snapshots,
                 snapshot_interval=snapshot_interval, cert_expiry=cert_expiry,
                 external_ca=external_ca)
    lock = _autolock(ctx, "swarm update")
    if lock is None and all(v is None for v in given.values()):
        # docker shows the command's help when no flag is given
        sys.stdout.write(ctx.get_help() + "\n")
        return
    sw = call(lambda: client().get_json("/swarm"))
    spec = sw.get("Spec") or {}
    prev = bool((spec.get("EncryptionConfig") or {}).get("AutoLockManagers"))
    root = ((sw.get("ClusterInfo") or sw).get("TLSInfo") or {}).get("TrustRoot", "")
    _merge_spec(spec, "swarm update", "[OPTIONS]", autolock=lock, ca_cert=root, **given)
    cur = bool((spec.get("EncryptionConfig") or {}).get("AutoLockManagers"))
    call(lambda: client().post_json(
        "/swarm/update", {"version": (sw.get("Version") or {}).get("Index", 0),
                          "rotateWorkerToken": False, "rotateManagerToken": False,
                          "rotateManagerUnlockKey": False}, spec))
    print("Swarm updated.")
    if cur and not prev:
        _print_unlock_command(_unlock_key())


@app.command("leave")
def leave(args: Optional[List[str]] = typer.Argument(None, hidden=True),
          force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Leave the swarm"""
    check_args("swarm leave", "[OPTIONS]", args, 0, 0)
    call(lambda: client().request("POST", "/swarm/leave", {"force": force}).close())
    print("Node left the swarm.")


@app.command("unlock")
def unlock(args: Optional[List[str]] = typer.Argument(None, hidden=True)) -> None:
    """Unlock swarm"""
    check_args("swarm unlock", "", args, 0, 0)
    info = call(lambda: client().get_json("/info"))
    state = (info.get("Swarm") or {}).get("LocalNodeState", "")
    if state == "inactive":
        fail("Error: This node is not part of a swarm")
    if state in ("pending", "active", "error"):
        fail("Error: swarm is not locked")
    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("Enter unlock key: ", stream=sys.stdout)
    else:
        key = sys.stdin.readline().strip()
    call(lambda: client().post_json("/swarm/unlock", None, {"UnlockKey": key}))


def _pem_file(flag: str, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        data = open(path).read()
    except OSError as e:
        usage_fail("swarm ca", "[OPTIONS]", f'invalid argument "{path}" for "--{flag}" flag: '
                                            f"open {path}: {(e.strerror or '').lower()}")
    if "-----BEGIN" not in data:
        usage_fail("swarm ca", "[OPTIONS]", f'invalid argument "{path}" for "--{flag}" flag: '
                                            "file contents must be in PEM format")
    return data


@app.command("ca")
def ca(args: Optional[List[str]] = typer.Argument(None, hidden=True),
       rotate: bool = typer.Option(False, "--rotate"),
       ca_cert: Optional[str] = typer.Option(None, "--ca-cert"),
       ca_key: Optional[str] = typer.Option(None, "--ca-key"),
       cert_expiry: Optional[str] = typer.Option(None, "--cert-expiry"),
       external_ca: Optional[List[str]] = typer.Option(None, "--external-ca"),
       detach: bool = typer.Option(False, "-d", "--detach"),
       quiet: bool = typer.Option(False, "-q", "--quiet")) -> None:
    """Display and rotate the root CA"""
    check_args("swarm ca", "[OPTIONS]", args, 0, 0)
    cert, key = _pem_file("ca-cert", ca_cert), _pem_file("ca-key", ca_key)
    if cert_expiry is not None:
        _duration("swarm ca", "[OPTIONS]", "cert-expiry", cert_expiry)
    cas = [_external_ca("swarm ca", "[OPTIONS]", v) for v in external_ca or []]
    sw = call(lambda: client().get_json("/swarm"))
    if not rotate:
        for flag, v in (("ca-cert", ca_cert), ("ca-key", ca_key), ("cert-expiry", cert_expiry),
                        ("external-ca", external_ca)):
            if v is not None:
                fail(f"`--{flag}` flag requires the `--rotate` flag to update the CA")
        _display_trust_root(sw)
        return
    if external_ca is not None and cas and ca_cert is None:
        fail("rotating to an external CA requires the `--ca-cert` flag to specify the external "
             "CA's cert - to add an external CA with the current root CA certificate, use the "
             "`update` command instead")
    if ca_cert is not None and not cas and ca_key is None:
        fail("the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be "
             "provided as well")
    spec = sw.get("Spec") or {}
    _merge_ca(spec, "swarm ca", "[OPTIONS]", cert_expiry, external_ca, cert or "")
    conf = spec.setdefault("CAConfig", {})
    conf["SigningCACert"], conf["SigningCAKey"] = cert or "", key or ""
    if not cert and not key:
        conf["ForceRotate"] = conf.get("ForceRotate", 0) + 1
    call(lambda: client().post_json(
        "/swarm/update", {"version": (sw.get("Version") or {}).get("Index", 0),
                          "rotateWorkerToken": False, "rotateManagerToken": False,
                          "rotateManagerUnlockKey": False}, spec))
    if detach:
        return
    _wait_root_rotation(quiet)
    _display_trust_root(call(lambda: client().get_json("/swarm")))


def _display_trust_root(sw: dict[str, Any]) -> None:
    root = ((sw.get("ClusterInfo") or sw).get("TLSInfo") or {}).get("TrustRoot", "")
    if not root:
        fail("No CA information available")
    print(root.strip())


def _rotation_progress() -> Any:
    """progress.RootRotationProgress as JSON messages: the desired root's
    digest and how many nodes have the new certificates and trust root, every
    200 ms until the rotation is over."""
    import hashlib
    import time

    for mid, action in (("desired root digest", ""), ("  rotated TLS certificates", ""),
                        ("  rotated CA certificates", " ")):
        yield {"id": mid, "status": action, "progressDetail": {}}
    done = False
    while True:
        sw = call(lambda: client().get_json("/swarm"))
        if done:
            return
        nodes = call(lambda: client().get_json("/nodes")) or []
        tls = sw.get("TLSInfo") or {}
        root = tls.get("TrustRoot", "")
        yield {"id": "desired root digest", "progressDetail": {},
               "status": "sha256:" + hashlib.sha256(root.encode()).hexdigest()}
        certs = sum(1 for n in nodes if all(
            ((n.get("Description") or {}).get("TLSInfo") or {}).get(k) == tls.get(k)
            for k in ("CertIssuerPublicKey", "CertIssuerSubject")))
        roots = sum(1 for n in nodes
                    if ((n.get("Description") or {}).get("TLSInfo") or {}).get("TrustRoot") == root)
        total = len(nodes)
        yield {"id": "  rotated TLS certificates", "status": "",
               "progressDetail": {"current": certs, "total": total, "units": "nodes"}}
        converged = certs == total and not sw.get("RootRotationInProgress")
        yield {"id": "  rotated CA certificates", "status": " ",
               "progressDetail": {"current": roots if converged else 0, "total": total,
                                  "units": "nodes"}}
        done = converged and roots == total
        time.sleep(0.2)


def _wait_root_rotation(quiet: bool) -> None:
    if quiet:
        for _ in _rotation_progress():
            pass
        return
    from .progress import display

    display(_rotation_progress(), sys.stdout, sys.stdout.isatty())
