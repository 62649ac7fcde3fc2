"""`service create`: docker's flags made into a ServiceSpec as its
serviceOptions.ToService does, sent, then the service shown converging."""

from __future__ import annotations

import sys
from typing import Any

from .. import svcopts as so
from ..common import client
from ..pflags import Command, Parsed
from .api import Failure, api_error
from .flags import CREATE_FLAGS, flat

def _env_list(p: Parsed) -> list[str]:
    """opts.ReadKVEnvStrings, then later values of a name replace earlier ones."""
    from ..runflags import UsageError
    from ..runopts import env_list

    try:
        values = env_list(p["env_file"], p["env"])
    except UsageError as e:
        raise Failure(str(e)) from None
    out: list[str] = []
    for e in values:
        k = e.partition("=")[0]
        out = [c for c in out if c == e or not c.startswith(k + "=")]
        if e not in out:
            out.append(e)
    return out


def _healthcheck(p: Parsed) -> dict | None:
    have = bool(p["health_cmd"]) or p["health_interval"] is not None or \
        p["health_timeout"] is not None or bool(p["health_retries"])
    if p["no_healthcheck"]:
        if have:
            raise Failure("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    h: dict[str, Any] = {}
    if p["health_cmd"]:
        h["Test"] = ["CMD-SHELL", p["health_cmd"]]
    for key, field in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                       ("health_start_period", "StartPeriod")):
        if p[key]:
            h[field] = p[key]
    if p["health_retries"]:
        h["Retries"] = p["health_retries"]
    return h


def _mode(p: Parsed) -> dict:
    mode, replicas = p["mode"] or "replicated", p["replicas"]
    maxc, maxr = p["max_concurrent"], p["max_replicas"] or 0
    if mode == "global":
        if replicas is not None:
            raise Failure("replicas can only be used with replicated or replicated-job mode")
        if maxr > 0:
            raise Failure("replicas-max-per-node can only be used with replicated or "
                          "replicated-job mode")
        if maxc is not None:
            raise Failure("max-concurrent can only be used with replicated-job mode")
        return {"Global": {}}
    if mode == "replicated":
        if maxc is not None:
            raise Failure("max-concurrent can only be used with replicated-job mode")
        return {"Replicated": {} if replicas is None else {"Replicas": replicas}}
    if mode == "replicated-job":
        job: dict[str, Any] = {}
        if (maxc if maxc is not None else replicas) is not None:
            job["MaxConcurrent"] = maxc if maxc is not None else replicas
        if replicas is not None:
            job["TotalCompletions"] = replicas
        return {"ReplicatedJob": job}
    if mode == "global-job":
        if maxr > 0:
            raise Failure("replicas-max-per-node can only be used with replicated or "
                          "replicated-job mode")
        if maxc is not None:
            raise Failure("max-concurrent can only be used with replicated-job mode")
        if replicas is not None:
            raise Failure("replicas can only be used with replicated or replicated-job mode")
        return {"GlobalJob": {}}
    raise Failure(f"Unknown mode: {mode}, only replicated and global supported")


def update_config(p: Parsed, prefix: str, current: dict | None) -> dict | None:
    keys = [f"{prefix}_{k}" for k in ("parallelism", "delay", "monitor", "failure_action",
                                      "max_failure_ratio", "order")]
    if not p.changed & set(keys):
        return current
    c = dict(current) if current is not None else dict(so.UPDATE_DEFAULTS)
    for key, field in zip(keys, ("Parallelism", "Delay", "Monitor", "FailureAction",
                                 "MaxFailureRatio", "Order")):
        if key in p.changed:
            c[field] = p[key]
    return c


def restart_policy(p: Parsed, current: dict | None) -> dict | None:
    keys = {"restart_condition": "Condition", "restart_delay": "Delay",
            "restart_max_attempts": "MaxAttempts", "restart_window": "Window"}
    if not p.changed & set(keys):
        return current
    rp = dict(current) if current is not None else dict(so.RESTART_DEFAULTS)
    for key, field in keys.items():
        if key in p.changed:
            rp[field] = p[key]
    return rp


def network_id(target: str) -> str:
    from ..client import APIError, path_quote

    try:
        return client().get_json(f"/networks/{path_quote(target)}", {"scope": "swarm"})["Id"]
    except APIError as e:
        raise Failure(api_error(e, "network", target)) from None


def resolve_refs(kind: str, refs: list[dict]) -> list[dict]:
    try:
        return so.resolve_refs(kind, refs)
    except ValueError as e:
        raise Failure(str(e)) from None


def service_spec(p: Parsed, image: str, args: list[str]) -> dict:
    """serviceOptions.ToService, then the secrets and configs."""
    env = _env_list(p)
    health = _healthcheck(p)
    mode = _mode(p)
    update = update_config(p, "update", None)
    rollback = update_config(p, "rollback", None)
    if ("ReplicatedJob" in mode or "GlobalJob" in mode) and (update or rollback):
        raise Failure("update and rollback configuration is not supported for jobs")
    networks = []
    for n in p["network"]:
        n = dict(n)
        n["Target"] = network_id(n["Target"])
        networks.append(n)
    networks.sort(key=lambda n: n["Target"])
    cap_add, cap_drop = so.capabilities(p["cap_add"], p["cap_drop"])
    cs: dict[str, Any] = {
        "Image": image, "Labels": so.kv_map(p["container_label"]), "Env": env,
        "Dir": p["workdir"] or "", "User": p["user"] or "", "Groups": p["group"],
        "StopSignal": p["stop_signal"] or "", "TTY": p["tty"], "ReadOnly": p["read_only"],
        "Mounts": p["mount"], "Init": p["init"],
        "DNSConfig": {k: v for k, v in (("Nameservers", p["dns"]), ("Search", p["dns_search"]),
                                        ("Options", p["dns_option"])) if v},
        "Hosts": [f"{ip} {host}" for host, _, ip in (h.partition(":") for h in p["host"])],
        "Isolation": p["isolation"] or "", "Sysctls": so.kv_map(p["sysctl"]),
        "CapabilityAdd": cap_add, "CapabilityDrop": cap_drop, "Ulimits": p["ulimit"],
    }
    if args:
        cs["Args"] = args
    if p["entrypoint"]:
        cs["Command"] = p["entrypoint"]
    if p["hostname"]:
        cs["Hostname"] = p["hostname"]
    if "stop_grace_period" in p.changed:
        cs["StopGracePeriod"] = p["stop_grace_period"]
    if health is not None:
        cs["Healthcheck"] = health
    if p["credential_spec"]:
        cs["Privileges"] = {"CredentialSpec": p["credential_spec"]}
    limits = {k: v for k, v in (("NanoCPUs", p["limit_cpu"]), ("MemoryBytes", p["limit_memory"]),
                                ("Pids", p["limit_pids"])) if v}
    reservations = {k: v for k, v in (("NanoCPUs", p["reserve_cpu"]),
                                      ("MemoryBytes", p["reserve_memory"])) if v}
    placement: dict[str, Any] = {}
    if p["constraint"]:
        placement["Constraints"] = p["constraint"]
    if p["placement_pref"]:
        placement["Preferences"] = p["placement_pref"]
    if p["max_replicas"]:
        placement["MaxReplicas"] = p["max_replicas"]
    task: dict[str, Any] = {"ContainerSpec": cs, "Resources": {"Limits": limits,
                                                               "Reservations": reservations},
                            "Placement": placement}
    if networks:
        task["Networks"] = networks
    rp = restart_policy(p, None)
    if rp is not None:
        task["RestartPolicy"] = rp
    if p["log_driver"]:
        task["LogDriver"] = {"Name": p["log_driver"], "Options": so.kv_map(p["log_opt"])}
    endpoint: dict[str, Any] = {"Mode": (p["endpoint_mode"] or "vip").lower()}
    if p["publish"]:
        endpoint["Ports"] = flat(p["publish"])
    spec: dict[str, Any] = {"Name": p["name"] or "", "Labels": so.kv_map(p["label"]),
                            "TaskTemplate": task, "Mode": mode, "EndpointSpec": endpoint}
    if update is not None:
        spec["UpdateConfig"] = update
    if rollback is not None:
        spec["RollbackConfig"] = rollback
    if p["secret"]:
        cs["Secrets"] = resolve_refs("secret", p["secret"])
    if p["config"]:
        cs["Configs"] = resolve_refs("config", p["config"])
    return spec


def send(path: str, params: dict | None, spec: dict, p: Parsed,
          query_registry: bool) -> dict:
    resp, warnings = so.send_spec(path, params, spec, bool(p.get("registry_auth")),
                                  query_registry)
    for w in warnings:
        print(w, file=sys.stderr)
    return resp


def wait(service_id: str, p: Parsed) -> None:
    from ..swarmlist import wait_on_service

    if p["detach"]:
        return
    err = wait_on_service(service_id, p["quiet"])
    if err is not None:
        raise Failure(err)


CREATE = Command("service create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
                 "Create a new service", CREATE_FLAGS, ("min", 1), interspersed=False)


def create(p: Parsed) -> None:
    spec = service_spec(p, p.args[0], p.args[1:])
    resp = send("/services/create", None, spec, p, not p["no_resolve_image"])
    print(resp.get("ID", ""))
    sys.stdout.flush()
    wait(resp.get("ID", ""), p)
