"""`service update`, `rollback`, `scale` and `rm`: changes to existing
services, made to the spec the daemon has as docker's updateService makes them."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from .. import svcopts as so
from ..common import client
from ..pflags import Command, Parsed
from .api import Failure, api_error, get_service
from .create import network_id, resolve_refs, restart_policy, send, update_config, wait
from .flags import UPDATE_FLAGS, flat

UPDATE = Command("service update", "update [OPTIONS] SERVICE", "Update a service", UPDATE_FLAGS,
                 ("exact", 1))


def _update_spec(p: Parsed, spec: dict) -> None:
    """updateService: each flag given changes its part of the current spec."""
    ch = p.changed
    task = spec.setdefault("TaskTemplate", {})
    cs = task.setdefault("ContainerSpec", {})

    def update_map(obj: dict, field: str, add: str, rm: str) -> None:
        if obj.get(field) is not None and rm in ch:
            for k in p[rm]:
                obj[field].pop(k, None)
        if add in ch:
            obj[field] = dict(obj.get(field) or {})
            obj[field].update(so.kv_map(p[add]))

    update_map(spec, "Labels", "label", "label_rm")
    update_map(cs, "Labels", "container_label", "container_label_rm")
    if "image" in ch:
        cs["Image"] = p["image"]
    if "args" in ch:
        cs["Args"] = p["args"]
    if "entrypoint" in ch:
        cs["Command"] = p["entrypoint"]
    # env: removals by name, then additions replace the value of their name
    rm = set(p["env_rm"])
    env = [e for e in cs.get("Env") or [] if e.partition("=")[0] not in rm]
    if "env" in ch:
        for e in p["env"]:
            k = e.partition("=")[0]
            idx = [i for i, x in enumerate(env) if x.partition("=")[0] == k]
            if idx:
                env[idx[0]] = e
            else:
                env.append(e)
    cs["Env"] = env
    for key, field in (("workdir", "Dir"), ("user", "User"), ("hostname", "Hostname"),
                       ("isolation", "Isolation"), ("stop_signal", "StopSignal")):
        if key in ch:
            cs[field] = p[key]
    if "init" in ch:
        cs["Init"] = p["init"]
    if ch & {"mount", "mount_rm"}:
        by_target: dict[str, dict] = {}
        for m in p["mount"]:
            if m["Target"] in by_target:
                raise Failure("duplicate mount target")
            by_target[m["Target"]] = m
        for m in cs.get("Mounts") or []:
            by_target.setdefault(m.get("Target", ""), m)
        gone = set(p["mount_rm"])
        cs["Mounts"] = sorted((m for t, m in by_target.items() if t not in gone),
                              key=lambda m: (m.get("Source", ""), m.get("Target", "")))
    update_map(cs, "Sysctls", "sysctl", "sysctl_rm")
    if ch & {"ulimit", "ulimit_rm"}:
        lims = {u["Name"]: u for u in cs.get("Ulimits") or []}
        for k in so.kv_map(p["ulimit_rm"]):
            lims.pop(k, None)
        lims.update({u["Name"]: u for u in p["ulimit"]})
        cs["Ulimits"] = sorted(lims.values(), key=lambda u: u["Name"])
    res = task.get("Resources")
    if ch & {"limit_cpu", "limit_memory", "limit_pids", "reserve_cpu", "reserve_memory"}:
        res = task["Resources"] = dict(res or {})
        res.setdefault("Limits", {})
        res.setdefault("Reservations", {})
        for key, part, field in (("limit_cpu", "Limits", "NanoCPUs"),
                                 ("limit_memory", "Limits", "MemoryBytes"),
                                 ("limit_pids", "Limits", "Pids"),
                                 ("reserve_cpu", "Reservations", "NanoCPUs"),
                                 ("reserve_memory", "Reservations", "MemoryBytes")):
            if key in ch:
                res[part][field] = p[key]
    if "stop_grace_period" in ch:
        cs["StopGracePeriod"] = p["stop_grace_period"]
    rp = restart_policy(p, task.get("RestartPolicy"))
    if rp is not None:
        task["RestartPolicy"] = rp
    if ch & {"constraint", "constraint_rm"}:
        pl = task.setdefault("Placement", {})
        gone = set(p["constraint_rm"])
        cons = [c for c in pl.get("Constraints") or [] if c not in gone]
        cons += [c for c in p["constraint"] if c not in cons]
        pl["Constraints"] = sorted(cons)
    if ch & {"placement_pref", "placement_pref_rm"}:
        pl = task.setdefault("Placement", {})
        gone = {(r.get("Spread") or {}).get("SpreadDescriptor") for r in p["placement_pref_rm"]}
        prefs = [x for x in pl.get("Preferences") or []
                 if (x.get("Spread") or {}).get("SpreadDescriptor") not in gone]
        pl["Preferences"] = prefs + p["placement_pref"]
    if ch & {"network", "network_rm"}:
        _update_networks(p, spec)
    if "replicas" in ch:
        if (spec.get("Mode") or {}).get("Replicated") is None:
            raise Failure("replicas can only be used with replicated mode")
        spec["Mode"]["Replicated"]["Replicas"] = p["replicas"]
    if "max_replicas" in ch:
        task.setdefault("Placement", {})["MaxReplicas"] = p["max_replicas"]
    for prefix, field in (("update", "UpdateConfig"), ("rollback", "RollbackConfig")):
        c = update_config(p, prefix, spec.get(field))
        if c is not None:
            spec[field] = c
    if "endpoint_mode" in ch:
        spec.setdefault("EndpointSpec", {})["Mode"] = p["endpoint_mode"]
    if ch & {"group", "group_rm"}:
        gone = set(p["group_rm"])
        cs["Groups"] = sorted(g for g in (cs.get("Groups") or []) + p["group"] if g not in gone)
    if ch & {"publish", "publish_rm"}:
        _update_ports(p, spec.setdefault("EndpointSpec", {}))
    if ch & {"dns", "dns_rm", "dns_option", "dns_option_rm", "dns_search", "dns_search_rm"}:
        old = cs.get("DNSConfig") or {}
        new: dict[str, list[str]] = {}
        for field, add, rm_key in (("Nameservers", "dns", "dns_rm"),
                                   ("Search", "dns_search", "dns_search_rm"),
                                   ("Options", "dns_option", "dns_option_rm")):
            vals = list(dict.fromkeys((old.get(field) or []) + p[add]))
            vals = sorted(v for v in vals if v not in set(p[rm_key]))
            if vals:
                new[field] = vals
        cs["DNSConfig"] = new
    if ch & {"host", "host_rm"}:
        _update_hosts(p, cs)
    if "log_driver" in ch or "log_opt" in ch:
        if "log_driver" in ch:
            task["LogDriver"] = {"Name": p["log_driver"], "Options": so.kv_map(p["log_opt"])}
        elif task.get("LogDriver"):
            task["LogDriver"]["Options"] = so.kv_map(p["log_opt"])
    if p["force"]:
        task["ForceUpdate"] = task.get("ForceUpdate", 0) + 1
    _update_health(p, cs)
    if "tty" in ch:
        cs["TTY"] = p["tty"]
    if "read_only" in ch:
        cs["ReadOnly"] = p["read_only"]
    if ch & {"cap_add", "cap_drop"}:
        _update_capabilities(p, cs)


def _update_capabilities(p: Parsed, cs: dict) -> None:
    """updateCapabilities: a drop takes back an add (and the reverse) before
    being recorded itself; RESET clears the list it is given to."""
    def norm(caps: list[str]) -> set[str]:
        out = set()
        for c in caps:
            c = c.strip().upper()
            out.add(c if c in ("ALL", "RESET") or c.startswith("CAP_") else "CAP_" + c)
        return out

    add, drop = norm(cs.get("CapabilityAdd") or []), norm(cs.get("CapabilityDrop") or [])
    to_add, to_drop = norm(p["cap_add"]), norm(p["cap_drop"])
    if "RESET" in to_add:
        add = set()
        to_add.discard("RESET")
    if "RESET" in to_drop:
        drop = set()
        to_drop.discard("RESET")
    for c in to_drop - to_add:
        if c in add:
            add.discard(c)
        else:
            drop.add(c)
    for c in to_add:
        if c in drop:
            drop.discard(c)
        else:
            add.add(c)

    def caps_list(caps: set[str]) -> list[str] | None:
        return ["ALL"] if "ALL" in caps else (sorted(caps) or None)

    cs["CapabilityDrop"], cs["CapabilityAdd"] = caps_list(drop), caps_list(add)


def _update_networks(p: Parsed, spec: dict) -> None:
    task = spec["TaskTemplate"]
    nets = task.get("Networks") or spec.get("Networks") or []
    spec.pop("Networks", None)
    gone = {network_id(n) for n in p["network_rm"]}
    out = [n for n in nets if n["Target"] not in gone]
    have = {n["Target"] for n in out}
    for n in p["network"]:
        n = dict(n)
        given, n["Target"] = n["Target"], network_id(n["Target"])
        if n["Target"] in have:
            raise Failure(f"service is already attached to network {given}")
        have.add(n["Target"])
        out.append(n)
    task["Networks"] = sorted(out, key=lambda n: n["Target"])


def _port_key(pc: dict) -> str:
    return (f"{pc.get('PublishedPort', 0)}:{pc.get('TargetPort', 0)}/{pc.get('Protocol', '')}/"
            f"{pc.get('PublishMode', '')}")


def _update_ports(p: Parsed, endpoint: dict) -> None:
    seen: dict[str, dict] = {}
    for pc in endpoint.get("Ports") or []:
        seen.setdefault(_port_key(pc), pc)
    rm = flat(p["publish_rm"])

    def same(a: str, b: str, default: str) -> bool:
        return (a or default) == (b or default)

    out = [pc for pc in seen.values() if not any(
        same(pc.get("Protocol", ""), r.get("Protocol", ""), "tcp")
        and pc.get("TargetPort") == r.get("TargetPort")
        and same(pc.get("PublishMode", ""), r.get("PublishMode", ""), "ingress") for r in rm)]
    for pc in flat(p["publish"]):
        if _port_key(pc) not in seen:
            out.append(pc)
    endpoint["Ports"] = sorted(out, key=_port_key)


def _update_hosts(p: Parsed, cs: dict) -> None:
    rm = []
    for e in p["host_rm"]:
        h, colon, ip = e.partition(":")
        rm.append((h, ip if colon else ""))
    hosts = []
    for entry in cs.get("Hosts") or []:
        parts = entry.split()
        if not parts:
            continue
        ip, names = parts[0], parts[1:]
        for h, rip in rm:
            if rip and rip != ip:
                continue
            names = [n for n in names if n != h]
        if names:
            hosts.append(f"{ip} {' '.join(names)}")
    for e in p["host"]:
        h, _, ip = e.partition(":")
        v = f"{ip} {h}"
        if v not in hosts:
            hosts.append(v)
    cs["Hosts"] = hosts


def _update_health(p: Parsed, cs: dict) -> None:
    keys = {"health_cmd", "health_interval", "health_timeout", "health_retries",
            "health_start_period", "no_healthcheck"}
    if not p.changed & keys:
        return
    if p["no_healthcheck"]:
        if p.changed & (keys - {"no_healthcheck"}):
            raise Failure("--no-healthcheck conflicts with --health-* options")
        cs["Healthcheck"] = {"Test": ["NONE"]}
        return
    h = dict(cs.get("Healthcheck") or {})
    if h.get("Test") == ["NONE"]:
        h.pop("Test")
    for key, field in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                       ("health_start_period", "StartPeriod"), ("health_retries", "Retries")):
        if key in p.changed:
            h[field] = p[key]
    if "health_cmd" in p.changed:
        h["Test"] = ["CMD-SHELL", p["health_cmd"]] if p["health_cmd"] else None
    cs["Healthcheck"] = h


def update(p: Parsed) -> None:
    from ..client import path_quote

    name = p.args[0]
    svc = get_service(name)
    spec = svc.get("Spec") or {}
    params: dict[str, Any] = {}
    if p["rollback"]:
        if p.changed - {"rollback", "detach", "quiet"}:
            raise Failure("other flags may not be combined with --rollback")
        params["rollback"] = "previous"
    _update_spec(p, spec)
    cs = spec["TaskTemplate"]["ContainerSpec"]
    gone = set(p["secret_rm"])
    secrets = [s for s in cs.get("Secrets") or [] if s.get("SecretName") not in gone]
    cs["Secrets"] = secrets + resolve_refs("secret", p["secret"])
    gone = set(p["config_rm"])
    configs = [c for c in cs.get("Configs") or []
               if c.get("Runtime") is not None or c.get("ConfigName") not in gone]
    cs["Configs"] = configs + resolve_refs("config", p["config"])
    if not p["registry_auth"]:
        params["registryAuthFrom"] = "spec"
    params["version"] = (svc.get("Version") or {}).get("Index", 0)
    send(f"/services/{path_quote(svc.get('ID', name))}/update", params, spec, p,
          "image" in p.changed and not p["no_resolve_image"])
    print(name)
    sys.stdout.flush()
    wait(name, p)




# --- rollback, scale, rm --------------------------------------------------------------------

ROLLBACK = Command("service rollback", "rollback [OPTIONS] SERVICE",
                   "Revert changes to a service's configuration",
                   [(("-d", "--detach"), "detach", "b", "Exit immediately instead of waiting "
                     "for the service to converge"),
                    (("-q", "--quiet"), "quiet", "b", "Suppress progress output")],
                   ("exact", 1))


def rollback(p: Parsed) -> None:
    from ..client import path_quote

    name = p.args[0]
    svc = get_service(name)
    spec = svc.get("Spec") or {}
    params = {"rollback": "previous", "version": (svc.get("Version") or {}).get("Index", 0)}
    send(f"/services/{path_quote(svc.get('ID', name))}/update", params, spec, p, False)
    print(name)
    sys.stdout.flush()
    wait(name, p)



SCALE = Command("service scale", "scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
                "Scale one or multiple replicated services",
                [(("-d", "--detach"), "detach", "b", "Exit immediately instead of waiting for "
                  "the service to converge")], ("min", 1))


def scale(p: Parsed) -> None:
    from ..client import APIError, ConnectError, path_quote

    for a in p.args:
        if "=" not in a:
            _fail_scale_arg(SCALE, a)
    errs, done = [], []
    for a in p.args:
        name, _, n = a.partition("=")
        try:
            scale = so.uint(n, 10)
        except ValueError as e:
            errs.append(f"{name}: invalid replicas value {n}: {e}")
            continue
        try:
            svc = get_service(name)
            mode = (svc.get("Spec") or {}).get("Mode") or {}
            if mode.get("Replicated") is not None:
                mode["Replicated"]["Replicas"] = scale
            elif mode.get("ReplicatedJob") is not None:
                mode["ReplicatedJob"]["TotalCompletions"] = scale
            else:
                raise Failure("scale can only be used with replicated or replicated-job mode")
            r = client().post_json(f"/services/{path_quote(svc['ID'])}/update",
                                   {"version": (svc.get("Version") or {}).get("Index", 0)},
                                   svc["Spec"])
            for w in (r or {}).get("Warnings") or []:
                print(w, file=sys.stderr)
            print(f"{name} scaled to {scale}")
            done.append(name)
        except Failure as e:
            errs.append(f"{name}: {e}")
        except (APIError, ConnectError) as e:
            errs.append(f"{name}: {api_error(e)}")
    if done and not p["detach"]:
        from ..swarmlist import wait_on_service

        sys.stdout.flush()
        for name in done:
            err = wait_on_service(name, False)
            if err is not None:
                errs.append(f"{name}: {err}")
    if errs:
        raise Failure("\n".join(errs))


def _fail_scale_arg(self: Command, arg: str) -> NoReturn:
    print(f"Invalid scale specifier '{arg}'.\nSee '{self.prog} --help'.\n\nUsage:  "
          f"{self.usage_line()}\n\n{self.short}", file=sys.stderr)
    raise SystemExit(1)



RM = Command("service rm", "rm SERVICE [SERVICE...]", "Remove one or more services", [],
             ("min", 1))


def rm(p: Parsed) -> None:
    from ..client import APIError, ConnectError, path_quote

    errs = []
    for s in p.args:
        try:
            client().request("DELETE", f"/services/{path_quote(s)}").close()
            print(s)
        except (APIError, ConnectError) as e:
            errs.append(api_error(e, "service", s))
    if errs:
        raise Failure("\n".join(errs))
