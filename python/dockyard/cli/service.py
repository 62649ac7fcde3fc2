"""The `service` command group (docker's `service` commands, swarm mode),
over the Engine API: create and update build the ServiceSpec from docker's
flags as docker's CLI does, ls/ps/inspect print its tables and templates,
create/update/scale/rollback show the service converging unless -d. Against
a daemon in no swarm (Dockyard's own) they print what docker's CLI prints."""

from __future__ import annotations

import sys
from typing import Any, Callable, NoReturn

import typer

from . import svcopts as so
from .common import client
from .pflags import Command, Flag, Parsed

RAW = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}

app = typer.Typer(help="Manage services", no_args_is_help=True, add_completion=False)


class Failure(Exception):
    """An error docker's CLI prints as is (exit 1)."""


def _api_error(e: Exception, kind: str = "", id: str = "") -> str:
    """docker's client wording: 404 on an object read is `Error: No such <kind>: <id>`."""
    from .client import APIError

    if isinstance(e, APIError):
        if e.status == 404 and kind:
            return f"Error: No such {kind}: {id}"
        return f"Error response from daemon: {e.message}"
    return str(e)


def _run(cmd: Command, argv: list[str], fn: Callable[[Parsed], None]) -> None:
    from .client import APIError, ConnectError

    p = cmd.parse(argv)
    try:
        fn(p)
    except Failure as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        raise SystemExit(1) from None
    except (APIError, ConnectError) as e:
        sys.stdout.flush()
        print(_api_error(e), file=sys.stderr)
        raise SystemExit(1) from None


def _register(cmd: Command, fn: Callable[[Parsed], None], *aliases: str) -> None:
    def command(ctx: typer.Context) -> None:
        _run(cmd, list(ctx.args), fn)

    command.__doc__ = cmd.short
    name = cmd.path.rsplit(" ", 1)[-1]
    for n in (name, *aliases):
        app.command(n, context_settings=RAW, help=cmd.short, hidden=n != name)(command)


def get_service(ref: str, insert_defaults: bool = False) -> dict:
    from .client import APIError, path_quote

    try:
        return client().get_json(f"/services/{path_quote(ref)}",
                                 {"insertDefaults": "true" if insert_defaults else None})
    except APIError as e:
        raise Failure(_api_error(e, "service", ref)) from None


# --- flags --------------------------------------------------------------------------------

def _update_flags(prefix: str, what: str) -> list[Flag]:
    return [
        ((f"--{prefix}-parallelism",), f"{prefix}_parallelism", so.uint10,
         f"Maximum number of tasks {what} simultaneously"),
        ((f"--{prefix}-delay",), f"{prefix}_delay", so.duration, "Delay between tasks"),
        ((f"--{prefix}-monitor",), f"{prefix}_monitor", so.duration,
         "Duration after each task to monitor for failure"),
        ((f"--{prefix}-failure-action",), f"{prefix}_failure_action", "s", "Action on failure"),
        ((f"--{prefix}-max-failure-ratio",), f"{prefix}_max_failure_ratio", so.float32,
         "Failure rate to tolerate"),
        ((f"--{prefix}-order",), f"{prefix}_order", "s", '("start-first"|"stop-first")'),
    ]


COMMON: list[Flag] = [
    (("-d", "--detach"), "detach", "b",
     "Exit immediately instead of waiting for the service to converge"),
    (("-q", "--quiet"), "quiet", "b", "Suppress progress output"),
    (("-w", "--workdir"), "workdir", "s", "Working directory inside the container"),
    (("-u", "--user"), "user", "s", "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("--credential-spec",), "credential_spec", so.credential_spec,
     "Credential spec for managed service account (Windows only)"),
    (("--hostname",), "hostname", "s", "Container hostname"),
    (("--entrypoint",), "entrypoint", so.shlex_words,
     "Overwrite the default ENTRYPOINT of the image"),
    (("--cap-add",), "cap_add", "l", "Add Linux capabilities"),
    (("--cap-drop",), "cap_drop", "l", "Drop Linux capabilities"),
    (("--limit-cpu",), "limit_cpu", so.nano_cpus, "Limit CPUs"),
    (("--limit-memory",), "limit_memory", so.mem_bytes, "Limit Memory"),
    (("--reserve-cpu",), "reserve_cpu", so.nano_cpus, "Reserve CPUs"),
    (("--reserve-memory",), "reserve_memory", so.mem_bytes, "Reserve Memory"),
    (("--limit-pids",), "limit_pids", so.int64, "Limit maximum number of processes"),
    (("--stop-grace-period",), "stop_grace_period", so.positive_duration,
     "Time to wait before force killing a container"),
    (("--replicas",), "replicas", so.uint, "Number of tasks"),
    (("--max-concurrent",), "max_concurrent", so.uint,
     "Number of job tasks to run concurrently"),
    (("--replicas-max-per-node",), "max_replicas", so.uint10,
     "Maximum number of tasks per node (default 0 = unlimited)"),
    (("--restart-condition",), "restart_condition", "s",
     'Restart when condition is met ("none"|"on-failure"|"any")'),
    (("--restart-delay",), "restart_delay", so.positive_duration,
     "Delay between restart attempts"),
    (("--restart-max-attempts",), "restart_max_attempts", so.uint,
     "Maximum number of restarts before giving up"),
    (("--restart-window",), "restart_window", so.positive_duration,
     "Window used to evaluate the restart policy"),
    *_update_flags("update", "updated"),
    *_update_flags("rollback", "rolled back"),
    (("--endpoint-mode",), "endpoint_mode", "s", "Endpoint mode (vip or dnsrr)"),
    (("--with-registry-auth",), "registry_auth", "b",
     "Send registry authentication details to swarm agents"),
    (("--no-resolve-image",), "no_resolve_image", "b",
     "Do not query the registry to resolve image digest and supported platforms"),
    (("--log-driver",), "log_driver", "s", "Logging driver for service"),
    (("--log-opt",), "log_opt", ("l", so.env), "Logging driver options"),
    (("--health-cmd",), "health_cmd", "s", "Command to run to check health"),
    (("--health-interval",), "health_interval", so.positive_duration,
     "Time between running the check (ms|s|m|h)"),
    (("--health-timeout",), "health_timeout", so.positive_duration,
     "Maximum time to allow one check to run (ms|s|m|h)"),
    (("--health-retries",), "health_retries", so.int64,
     "Consecutive failures needed to report unhealthy"),
    (("--health-start-period",), "health_start_period", so.positive_duration,
     "Start period for the container to initialize before counting retries"),
    (("--no-healthcheck",), "no_healthcheck", "b", "Disable any container-specified HEALTHCHECK"),
    (("-t", "--tty"), "tty", "b", "Allocate a pseudo-TTY"),
    (("--read-only",), "read_only", "b", "Mount the container's root filesystem as read only"),
    (("--stop-signal",), "stop_signal", "s", "Signal to stop the container"),
    (("--isolation",), "isolation", "s", "Service container isolation mode"),
]

CREATE_FLAGS: list[Flag] = [
    (("--mode",), "mode", "s", "Service mode (replicated, global, replicated-job, or global-job)"),
    (("--name",), "name", "s", "Service name"),
    *COMMON,
    (("-l", "--label"), "label", ("l", so.label), "Service labels"),
    (("--container-label",), "container_label", ("l", so.label), "Container labels"),
    (("-e", "--env"), "env", ("l", so.env), "Set environment variables"),
    (("--env-file",), "env_file", "l", "Read in a file of environment variables"),
    (("--mount",), "mount", ("l", so.mount), "Attach a filesystem mount to the service"),
    (("--constraint",), "constraint", "l", "Placement constraints"),
    (("--placement-pref",), "placement_pref", ("l", so.placement_pref),
     "Add a placement preference"),
    (("--network",), "network", ("l", so.network), "Network attachments"),
    (("--secret",), "secret", ("l", so.secret), "Specify secrets to expose to the service"),
    (("--config",), "config", ("l", so.config),
     "Specify configurations to expose to the service"),
    (("-p", "--publish"), "publish", ("l", so.ports), "Publish a port as a node port"),
    (("--group",), "group", "l", "Set one or more supplementary user groups for the container"),
    (("--dns",), "dns", ("l", so.ip_address), "Set custom DNS servers"),
    (("--dns-option",), "dns_option", "l", "Set DNS options"),
    (("--dns-search",), "dns_search", "l", "Set custom DNS search domains"),
    (("--host",), "host", ("l", so.extra_host),
     "Set one or more custom host-to-IP mappings (host:ip)"),
    (("--init",), "init", "b", "Use an init inside each service container"),
    (("--sysctl",), "sysctl", "l", "Sysctl options"),
    (("--ulimit",), "ulimit", ("l", so.ulimit), "Ulimit options"),
]

UPDATE_FLAGS: list[Flag] = [
    (("--image",), "image", "s", "Service image tag"),
    (("--args",), "args", so.shlex_words, "Service command args"),
    (("--rollback",), "rollback", "b", "Rollback to previous specification"),
    (("--force",), "force", "b", "Force update even if no changes require it"),
    *COMMON,
    (("--env-rm",), "env_rm", "l", "Remove an environment variable"),
    (("--group-rm",), "group_rm", "l", "Remove a previously added supplementary user group"),
    (("--label-rm",), "label_rm", "l", "Remove a label by its key"),
    (("--container-label-rm",), "container_label_rm", "l", "Remove a container label by its key"),
    (("--mount-rm",), "mount_rm", "l", "Remove a mount by its target path"),
    (("--publish-rm",), "publish_rm", ("l", so.ports),
     "Remove a published port by its target port"),
    (("--constraint-rm",), "constraint_rm", "l", "Remove a constraint"),
    (("--dns-rm",), "dns_rm", "l", "Remove a custom DNS server"),
    (("--dns-option-rm",), "dns_option_rm", "l", "Remove a DNS option"),
    (("--dns-search-rm",), "dns_search_rm", "l", "Remove a DNS search domain"),
    (("--host-rm",), "host_rm", "l", "Remove a custom host-to-IP mapping (host:ip)"),
    (("--label-add",), "label", ("l", so.label), "Add or update a service label"),
    (("--container-label-add",), "container_label", ("l", so.label),
     "Add or update a container label"),
    (("--env-add",), "env", ("l", so.env), "Add or update an environment variable"),
    (("--secret-rm",), "secret_rm", "l", "Remove a secret"),
    (("--secret-add",), "secret", ("l", so.secret), "Add or update a secret on a service"),
    (("--config-rm",), "config_rm", "l", "Remove a configuration file"),
    (("--config-add",), "config", ("l", so.config), "Add or update a config file on a service"),
    (("--mount-add",), "mount", ("l", so.mount), "Add or update a mount on a service"),
    (("--constraint-add",), "constraint", "l", "Add or update a placement constraint"),
    (("--placement-pref-add",), "placement_pref", ("l", so.placement_pref),
     "Add a placement preference"),
    (("--placement-pref-rm",), "placement_pref_rm", ("l", so.placement_pref),
     "Remove a placement preference"),
    (("--network-add",), "network", ("l", so.network), "Add a network"),
    (("--network-rm",), "network_rm", "l", "Remove a network"),
    (("--publish-add",), "publish", ("l", so.ports), "Add or update a published port"),
    (("--group-add",), "group", "l", "Add an additional supplementary user group"),
    (("--dns-add",), "dns", ("l", so.ip_address), "Add or update a custom DNS server"),
    (("--dns-option-add",), "dns_option", "l", "Add or update a DNS option"),
    (("--dns-search-add",), "dns_search", "l", "Add or update a custom DNS search domain"),
    (("--host-add",), "host", ("l", so.extra_host), "Add a custom host-to-IP mapping (host:ip)"),
    (("--init",), "init", "b", "Use an init inside each service container"),
    (("--sysctl-add",), "sysctl", "l", "Add or update a Sysctl option"),
    (("--sysctl-rm",), "sysctl_rm", "l", "Remove a Sysctl option"),
    (("--ulimit-add",), "ulimit", ("l", so.ulimit), "Add or update a ulimit option"),
    (("--ulimit-rm",), "ulimit_rm", "l", "Remove a ulimit option"),
]


def _flat(lists: list[list[Any]]) -> list[Any]:
    return [x for sub in lists for x in sub]


# --- create -------------------------------------------------------------------------------

def _env_list(p: Parsed) -> list[str]:
    """opts.ReadKVEnvStrings, then later values of a name replace earlier ones."""
    from .runflags import UsageError
    from .runopts import env_list

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


def _update_config(p: Parsed, prefix: str, current: dict | None) -> dict | None:
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


def _restart_policy(p: Parsed, current: dict | None) -> dict | None:
    keys = {"restart_condition": "Condition", "restart_delay": "Delay",
            "restart_max_attempts": "MaxAttempts", "restart_window": "Window"}
    if not p.changed & set(keys):
        return current
    rp = dict(current) if current is not None else dict(so.RESTART_DEFAULTS)
    for key, field in keys.items():
        if key in p.changed:
            rp[field] = p[key]
    return rp


def _network_id(target: str) -> str:
    from .client import APIError, path_quote

    try:
        return client().get_json(f"/networks/{path_quote(target)}", {"scope": "swarm"})["Id"]
    except APIError as e:
        raise Failure(_api_error(e, "network", target)) from None


def _resolve_refs(kind: str, refs: list[dict]) -> list[dict]:
    try:
        return so.resolve_refs(kind, refs)
    except ValueError as e:
        raise Failure(str(e)) from None


def service_spec(p: Parsed, image: str, args: list[str]) -> dict:
    """serviceOptions.ToService, then the secrets and configs."""
    env = _env_list(p)
    health = _healthcheck(p)
    mode = _mode(p)
    update = _update_config(p, "update", None)
    rollback = _update_config(p, "rollback", None)
    if ("ReplicatedJob" in mode or "GlobalJob" in mode) and (update or rollback):
        raise Failure("update and rollback configuration is not supported for jobs")
    networks = []
    for n in p["network"]:
        n = dict(n)
        n["Target"] = _network_id(n["Target"])
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
    rp = _restart_policy(p, None)
    if rp is not None:
        task["RestartPolicy"] = rp
    if p["log_driver"]:
        task["LogDriver"] = {"Name": p["log_driver"], "Options": so.kv_map(p["log_opt"])}
    endpoint: dict[str, Any] = {"Mode": (p["endpoint_mode"] or "vip").lower()}
    if p["publish"]:
        endpoint["Ports"] = _flat(p["publish"])
    spec: dict[str, Any] = {"Name": p["name"] or "", "Labels": so.kv_map(p["label"]),
                            "TaskTemplate": task, "Mode": mode, "EndpointSpec": endpoint}
    if update is not None:
        spec["UpdateConfig"] = update
    if rollback is not None:
        spec["RollbackConfig"] = rollback
    if p["secret"]:
        cs["Secrets"] = _resolve_refs("secret", p["secret"])
    if p["config"]:
        cs["Configs"] = _resolve_refs("config", p["config"])
    return spec


def _send(path: str, params: dict | None, spec: dict, p: Parsed,
          query_registry: bool) -> dict:
    resp, warnings = so.send_spec(path, params, spec, bool(p.get("registry_auth")),
                                  query_registry)
    for w in warnings:
        print(w, file=sys.stderr)
    return resp


def _wait(service_id: str, p: Parsed) -> None:
    from .swarmlist import wait_on_service

    if p["detach"]:
        return
    err = wait_on_service(service_id, p["quiet"])
    if err is not None:
        raise Failure(err)


CREATE = Command("service create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
                 "Create a new service", CREATE_FLAGS, ("min", 1), interspersed=False)


def _create(p: Parsed) -> None:
    spec = service_spec(p, p.args[0], p.args[1:])
    resp = _send("/services/create", None, spec, p, not p["no_resolve_image"])
    print(resp.get("ID", ""))
    sys.stdout.flush()
    _wait(resp.get("ID", ""), p)


_register(CREATE, _create)


# --- update -------------------------------------------------------------------------------

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
    rp = _restart_policy(p, task.get("RestartPolicy"))
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
        c = _update_config(p, prefix, spec.get(field))
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
    gone = {_network_id(n) for n in p["network_rm"]}
    out = [n for n in nets if n["Target"] not in gone]
    have = {n["Target"] for n in out}
    for n in p["network"]:
        n = dict(n)
        given, n["Target"] = n["Target"], _network_id(n["Target"])
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
    rm = _flat(p["publish_rm"])

    def same(a: str, b: str, default: str) -> bool:
        return (a or default) == (b or default)

    out = [pc for pc in seen.values() if not any(
        same(pc.get("Protocol", ""), r.get("Protocol", ""), "tcp")
        and pc.get("TargetPort") == r.get("TargetPort")
        and same(pc.get("PublishMode", ""), r.get("PublishMode", ""), "ingress") for r in rm)]
    for pc in _flat(p["publish"]):
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


def _update(p: Parsed) -> None:
    from .client import path_quote

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
    cs["Secrets"] = secrets + _resolve_refs("secret", p["secret"])
    gone = set(p["config_rm"])
    configs = [c for c in cs.get("Configs") or []
               if c.get("Runtime") is not None or c.get("ConfigName") not in gone]
    cs["Configs"] = configs + _resolve_refs("config", p["config"])
    if not p["registry_auth"]:
        params["registryAuthFrom"] = "spec"
    params["version"] = (svc.get("Version") or {}).get("Index", 0)
    _send(f"/services/{path_quote(svc.get('ID', name))}/update", params, spec, p,
          "image" in p.changed and not p["no_resolve_image"])
    print(name)
    sys.stdout.flush()
    _wait(name, p)


_register(UPDATE, _update)


# --- rollback, scale, rm --------------------------------------------------------------------

ROLLBACK = Command("service rollback", "rollback [OPTIONS] SERVICE",
                   "Revert changes to a service's configuration",
                   [(("-d", "--detach"), "detach", "b", "Exit immediately instead of waiting "
                     "for the service to converge"),
                    (("-q", "--quiet"), "quiet", "b", "Suppress progress output")],
                   ("exact", 1))


def _rollback(p: Parsed) -> None:
    from .client import path_quote

    name = p.args[0]
    svc = get_service(name)
    spec = svc.get("Spec") or {}
    params = {"rollback": "previous", "version": (svc.get("Version") or {}).get("Index", 0)}
    _send(f"/services/{path_quote(svc.get('ID', name))}/update", params, spec, p, False)
    print(name)
    sys.stdout.flush()
    _wait(name, p)


_register(ROLLBACK, _rollback)

SCALE = Command("service scale", "scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
                "Scale one or multiple replicated services",
                [(("-d", "--detach"), "detach", "b", "Exit immediately instead of waiting for "
                  "the service to converge")], ("min", 1))


def _scale(p: Parsed) -> None:
    from .client import APIError, ConnectError, path_quote

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
            errs.append(f"{name}: {_api_error(e)}")
    if done and not p["detach"]:
        from .swarmlist import wait_on_service

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


_register(SCALE, _scale)

RM = Command("service rm", "rm SERVICE [SERVICE...]", "Remove one or more services", [],
             ("min", 1))


def _rm(p: Parsed) -> None:
    from .client import APIError, ConnectError, path_quote

    errs = []
    for s in p.args:
        try:
            client().request("DELETE", f"/services/{path_quote(s)}").close()
            print(s)
        except (APIError, ConnectError) as e:
            errs.append(_api_error(e, "service", s))
    if errs:
        raise Failure("\n".join(errs))


_register(RM, _rm, "remove")


# --- ls, ps, inspect, logs ----------------------------------------------------------------

LS = Command("service ls", "ls [OPTIONS]", "List services", [
    (("-q", "--quiet"), "quiet", "b", "Only display IDs"),
    (("--format",), "format", "s", "Pretty-print services using a Go template"),
    (("-f", "--filter"), "filter", ("l", lambda v: _filter(v)),
     "Filter output based on conditions provided")], ("none", 0))


def _filter(v: str) -> str:
    if "=" not in v:
        raise ValueError("bad format of filter (expected name=value)")
    return v


def _filters(values: list[str]) -> dict[str, dict[str, bool]]:
    f: dict[str, dict[str, bool]] = {}
    for v in values:
        k, _, val = v.partition("=")
        f.setdefault(k.strip().lower(), {})[val] = True
    return f


def _ls(p: Parsed) -> None:
    import json

    from .swarmlist import print_services

    params = {"filters": json.dumps(_filters(p["filter"])) if p["filter"] else None,
              "status": None if p["quiet"] else "true"}
    services = client().get_json("/services", params) or []
    print_services(services, p["format"], p["quiet"])


_register(LS, _ls, "list")

PS = Command("service ps", "ps [OPTIONS] SERVICE [SERVICE...]",
             "List the tasks of one or more services", [
                 (("-q", "--quiet"), "quiet", "b", "Only display task IDs"),
                 (("--no-trunc",), "no_trunc", "b", "Do not truncate output"),
                 (("--no-resolve",), "no_resolve", "b", "Do not map IDs to Names"),
                 (("--format",), "format", "s", "Pretty-print tasks using a Go template"),
                 (("-f", "--filter"), "filter", ("l", lambda v: _filter(v)),
                  "Filter output based on conditions provided")], ("min", 1))


def node_reference(ref: str) -> str:
    """node.Reference: `self` is this node's ID; other names are looked up."""
    from .client import APIError, path_quote

    if ref == "self":
        info = client().get_json("/info")
        node = ((info.get("Swarm") or {}).get("NodeID")) or ""
        if not node:
            raise Failure("This node is not a swarm manager. Use \"docker swarm init\" or "
                          "\"docker swarm join\" to connect this node to swarm and try again.")
        return node
    try:
        return client().get_json(f"/nodes/{path_quote(ref)}")["ID"]
    except APIError as e:
        raise Failure(_api_error(e, "node", ref)) from None


def _ps(p: Parsed) -> None:
    import json

    from .swarmlist import IDResolver, print_tasks

    filters = _filters(p["filter"])
    by_id = client().get_json("/services", {"filters": json.dumps(
        {"id": {s: True for s in p.args}})}) or []
    by_name = client().get_json("/services", {"filters": json.dumps(
        {"name": {s: True for s in p.args}})}) or []
    notfound, count = [], 0
    for s in p.args:
        hit = next((x["ID"] for x in by_id if x["ID"] == s), None) or \
            next((x["ID"] for x in by_name if (x.get("Spec") or {}).get("Name") == s), None)
        if hit:
            filters.setdefault("service", {})[hit] = True
            count += 1
            continue
        found = False
        for x in by_id:
            if x["ID"].startswith(s):
                if found:
                    raise Failure(f"multiple services found with provided prefix: {s}")
                filters.setdefault("service", {})[x["ID"]] = True
                count += 1
                found = True
        if not found:
            notfound.append(f"no such service: {s}")
    if count == 0:
        raise Failure("\n".join(notfound))
    if "node" in filters:
        filters["node"] = {node_reference(n): True for n in filters["node"]}
    tasks = client().get_json("/tasks", {"filters": json.dumps(filters)}) or []
    no_trunc = p["no_trunc"] or p["quiet"]
    print_tasks(tasks, IDResolver(p["no_resolve"]), not no_trunc, p["quiet"], p["format"])
    if notfound:
        raise Failure("\n".join(notfound))


_register(PS, _ps)

INSPECT = Command("service inspect", "inspect [OPTIONS] SERVICE [SERVICE...]",
                  "Display detailed information on one or more services", [
                      (("-f", "--format"), "format", "s",
                       "Format the output using the given Go template"),
                      (("--pretty",), "pretty", "b",
                       "Print the information in a human friendly format")], ("min", 1))


def _inspect(p: Parsed) -> None:
    from .client import APIError, ConnectError, path_quote

    if p["pretty"] and p["format"]:
        raise Failure("--format is incompatible with human friendly format")
    fmt = "pretty" if p["pretty"] else (p["format"] or "")
    if fmt.startswith("pretty") and fmt != "pretty":
        raise Failure("Cannot supply extra formatting options to the pretty template")

    def get(ref: str) -> dict:
        try:
            return client().get_json(f"/services/{path_quote(ref)}", {"insertDefaults": "true"})
        except APIError as e:
            if e.status == 404:
                raise Failure(f"Error: no such service: {ref}") from None
            raise Failure(_api_error(e)) from None
        except ConnectError as e:
            raise Failure(str(e)) from None

    if fmt == "pretty":
        from .svcpretty import pretty

        # the first failure ends it all, before anything is written
        sys.stdout.write("".join([pretty(get(ref)) for ref in p.args]))
        return
    found, errs = [], []
    for ref in p.args:
        try:
            found.append(get(ref))
        except Failure as e:
            errs.append(str(e))
    if fmt:
        from .inspector import sorted_maps
        from .output import print_one

        for obj in found:
            print_one(fmt, sorted_maps(obj))
    else:
        from .output import print_json_indent

        print_json_indent(found)
    if errs:
        raise Failure("Status: " + "\n".join(errs) + ", Code: 1")


_register(INSPECT, _inspect)

LOGS = Command("service logs", "logs [OPTIONS] SERVICE|TASK",
               "Fetch the logs of a service or task", [
                   (("--no-resolve",), "no_resolve", "b", "Do not map IDs to Names in output"),
                   (("--no-trunc",), "no_trunc", "b", "Do not truncate output"),
                   (("--raw",), "raw", "b", "Do not neatly format logs"),
                   (("--no-task-ids",), "no_task_ids", "b", "Do not include task IDs in output"),
                   (("-f", "--follow"), "follow", "b", "Follow log output"),
                   (("--since",), "since", "s", "Show logs since timestamp or relative"),
                   (("-t", "--timestamps"), "timestamps", "b", "Show timestamps"),
                   (("--details",), "details", "b", "Show extra details provided to logs"),
                   (("-n", "--tail"), "tail", "s",
                    "Number of lines to show from the end of the logs")], ("exact", 1))


def _logs(p: Parsed) -> None:
    from .client import APIError, path_quote
    from .opts import time_param

    target = p.args[0]
    padding, task_target = 1, False
    try:
        svc = client().get_json(f"/services/{path_quote(target)}")
        tty = ((svc["Spec"]["TaskTemplate"].get("ContainerSpec") or {}).get("TTY", False))
        replicas = ((svc["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        if replicas is not None:
            padding = len(str(replicas))
    except APIError as e:
        if e.status != 404:
            raise
        try:
            task = client().get_json(f"/tasks/{path_quote(target)}")
        except APIError as e2:
            if e2.status == 404:
                raise Failure(f"no such task or service: {target}") from None
            raise
        tty = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("TTY", False)
        padding = len(str(task.get("Slot", 0)))
        task_target = True
    if tty and not p["raw"]:
        raise Failure("tty service logs only supported with --raw")
    params = {"stdout": "1", "stderr": "1", "since": time_param(p["since"]),
              "timestamps": "1" if p["timestamps"] else None,
              "details": "1" if p["details"] or not p["raw"] else None,
              "follow": "1" if p["follow"] else None, "tail": p["tail"] or "all"}
    kind = "tasks" if task_target else "services"
    r = client().request("GET", f"/{kind}/{path_quote(target)}/logs", params)
    try:
        _copy_logs(r, tty, p, padding)
    finally:
        r.close()


def _copy_logs(r: Any, tty: bool, p: Parsed, padding: int) -> None:
    from .streams import copy_output

    if tty or p["raw"]:
        copy_output(r.read_chunk, tty)
        return
    from .swarmlist import IDResolver

    resolver = IDResolver(p["no_resolve"])
    cache: dict[tuple[str, str, str], str] = {}

    def prefix(node: str, service: str, task_id: str) -> str:
        key = (node, service, task_id)
        if key not in cache:
            from .client import path_quote

            task = client().get_json(f"/tasks/{path_quote(task_id)}")
            name = f"{resolver.resolve('service', service)}.{task.get('Slot', 0)}"
            if not p["no_task_ids"]:
                name += "." + (task["ID"] if p["no_trunc"] else task["ID"][:12])
            pad = " " * max(padding - len(str(task.get("Slot", 0))), 0)
            cache[key] = f"{name}@{resolver.resolve('node', node)}{pad}"
        return cache[key]

    class Writer:
        def __init__(self, out: Any) -> None:
            self.out = out

        def write(self, buf: bytes) -> None:
            from urllib.parse import unquote_plus

            n = 3 if p["timestamps"] else 2
            parts = buf.split(b" ", n - 1)
            if len(parts) != n:
                raise Failure(f"invalid context in log message: {buf.decode(errors='replace')}")
            di = 1 if p["timestamps"] else 0
            details = {}
            for pair in parts[di].decode().split(","):
                if not pair:
                    continue
                k, _, v = pair.partition("=")
                details[unquote_plus(k)] = unquote_plus(v)
            node = details.pop("com.docker.swarm.node.id", "")
            service = details.pop("com.docker.swarm.service.id", "")
            task = details.pop("com.docker.swarm.task.id", "")
            out = parts[0] + b" " if p["timestamps"] else b""
            out += (prefix(node, service, task) + "    | ").encode()
            if p["details"]:
                out += ",".join(sorted(f"{k}={v}" for k, v in details.items())).encode() + b" "
            self.out.write(out + parts[di + 1])
            self.out.flush()

        def flush(self) -> None:
            self.out.flush()

    copy_output(r.read_chunk, False, Writer(sys.stdout.buffer), Writer(sys.stderr.buffer))


_register(LOGS, _logs)
