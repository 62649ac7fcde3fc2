"""The flags of `run` and `create`: one table, from which the fast path
(fast.py, no Typer) parses argv and the Typer commands (container/run.py)
generate their options. runconfig.py turns the parsed options into the
create request, runflow.py runs it.

Follows docker/cli 20.10 (cli/command/container/opts.go): flags stop at the
image (pflag with interspersed args off), combined short flags (`-it`,
`-dit`, `-eK=V`), `--flag=value` and `--bool=false`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any

# (spellings, key, kind, help); kind: "b" bool, "s" string, "l" repeatable
FLAGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("--add-host",), "add_host", "l", "Add a custom host-to-IP mapping (host:ip)"),
    (("-a", "--attach"), "attach", "l", "Attach to STDIN, STDOUT or STDERR"),
    (("--blkio-weight",), "blkio_weight", "s", "Block IO (relative weight), 10 to 1000"),
    (("--cap-add",), "cap_add", "l", "Add Linux capabilities"),
    (("--cap-drop",), "cap_drop", "l", "Drop Linux capabilities"),
    (("--cgroup-parent",), "cgroup_parent", "s", "Optional parent cgroup for the container"),
    (("--cgroupns",), "cgroupns", "s", "Cgroup namespace to use (host|private)"),
    (("--cidfile",), "cidfile", "s", "Write the container ID to the file"),
    (("--cpu-period",), "cpu_period", "s", "Limit CPU CFS period"),
    (("--cpu-quota",), "cpu_quota", "s", "Limit CPU CFS quota"),
    (("--cpu-rt-period",), "cpu_rt_period", "s", "Limit CPU real-time period in microseconds"),
    (("--cpu-rt-runtime",), "cpu_rt_runtime", "s", "Limit CPU real-time runtime in microseconds"),
    (("-c", "--cpu-shares"), "cpu_shares", "s", "CPU shares (relative weight)"),
    (("--cpus",), "cpus", "s", "Number of CPUs"),
    (("--cpuset-cpus",), "cpuset_cpus", "s", "CPUs in which to allow execution (0-3, 0,1)"),
    (("--cpuset-mems",), "cpuset_mems", "s", "MEMs in which to allow execution (0-3, 0,1)"),
    (("-d", "--detach"), "detach", "b", "Run container in background and print container ID"),
    (("--detach-keys",), "detach_keys", "s", "Override the key sequence for detaching a container"),
    (("--device",), "device", "l", "Add a host device to the container"),
    (("--device-cgroup-rule",), "device_cgroup_rule", "l",
     "Add a rule to the cgroup allowed devices list"),
    (("--dns",), "dns", "l", "Set custom DNS servers"),
    (("--dns-option",), "dns_option", "l", "Set DNS options"),
    (("--dns-search",), "dns_search", "l", "Set custom DNS search domains"),
    (("--domainname",), "domainname", "s", "Container NIS domain name"),
    (("--entrypoint",), "entrypoint", "s", "Overwrite the default ENTRYPOINT of the image"),
    (("-e", "--env"), "env", "l", "Set environment variables"),
    (("--env-file",), "env_file", "l", "Read in a file of environment variables"),
    (("--expose",), "expose", "l", "Expose a port or a range of ports"),
    (("--group-add",), "group_add", "l", "Add additional groups to join"),
    (("--health-cmd",), "health_cmd", "s", "Command to run to check health"),
    (("--health-interval",), "health_interval", "s",
     "Time between running the check (ms|s|m|h) (default 0s)"),
    (("--health-retries",), "health_retries", "s", "Consecutive failures needed to report unhealthy"),
    (("--health-start-period",), "health_start_period", "s",
     "Start period for the container to initialize before starting health-retries countdown "
     "(ms|s|m|h) (default 0s)"),
    (("--health-timeout",), "health_timeout", "s",
     "Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
    (("-h", "--hostname"), "hostname", "s", "Container host name"),
    (("--init",), "init", "b", "Run an init inside the container"),
    (("-i", "--interactive"), "interactive", "b", "Keep STDIN open even if not attached"),
    (("--ip",), "ip", "s", "IPv4 address (e.g., 172.30.100.104)"),
    (("--ip6",), "ip6", "s", "IPv6 address (e.g., 2001:db8::33)"),
    (("--ipc",), "ipc", "s", "IPC mode to use"),
    (("--isolation",), "isolation", "s", "Container isolation technology"),
    (("--kernel-memory",), "kernel_memory", "s", "Kernel memory limit"),
    (("-l", "--label"), "label", "l", "Set meta data on a container"),
    (("--label-file",), "label_file", "l", "Read in a line delimited file of labels"),
    (("--link",), "link", "l", "Add link to another container"),
    (("--log-driver",), "log_driver", "s", "Logging driver for the container"),
    (("--log-opt",), "log_opt", "l", "Log driver options"),
    (("--mac-address",), "mac_address", "s", "Container MAC address"),
    (("-m", "--memory"), "memory", "s", "Memory limit"),
    (("--memory-reservation",), "memory_reservation", "s", "Memory soft limit"),
    (("--memory-swap",), "memory_swap", "s",
     "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    (("--memory-swappiness",), "memory_swappiness", "s", "Tune container memory swappiness"),
    (("--mount",), "mount", "l", "Attach a filesystem mount to the container"),
    (("--name",), "name", "s", "Assign a name to the container"),
    (("--network", "--net"), "network", "s", "Connect a container to a network"),
    (("--network-alias", "--net-alias"), "network_alias", "l", "Add network-scoped alias"),
    (("--no-healthcheck",), "no_healthcheck", "b", "Disable any container-specified HEALTHCHECK"),
    (("--oom-kill-disable",), "oom_kill_disable", "b", "Disable OOM Killer"),
    (("--oom-score-adj",), "oom_score_adj", "s", "Tune host's OOM preferences (-1000 to 1000)"),
    (("--pid",), "pid", "s", "PID namespace to use"),
    (("--pids-limit",), "pids_limit", "s", "Tune container pids limit (set -1 for unlimited)"),
    (("--platform",), "platform", "s", "Set platform if server is multi-platform capable"),
    (("--privileged",), "privileged", "b", "Give extended privileges to this container"),
    (("-p", "--publish"), "publish", "l", "Publish a container's port(s) to the host"),
    (("-P", "--publish-all"), "publish_all", "b", "Publish all exposed ports to random ports"),
    (("--pull",), "pull", "s", 'Pull image before running ("always"|"missing"|"never")'),
    (("-q", "--quiet"), "quiet", "b", "Suppress the pull output"),
    (("--read-only",), "read_only", "b", "Mount the container's root filesystem as read only"),
    (("--restart",), "restart", "s", "Restart policy to apply when a container exits"),
    (("--rm",), "rm", "b", "Automatically remove the container when it exits"),
    (("--runtime",), "runtime", "s", "Runtime to use for this container"),
    (("--security-opt",), "security_opt", "l", "Security Options"),
    (("--shm-size",), "shm_size", "s", "Size of /dev/shm"),
    (("--sig-proxy",), "sig_proxy", "b", "Proxy received signals to the process (default true)"),
    (("--stop-signal",), "stop_signal", "s", "Signal to stop a container"),
    (("--stop-timeout",), "stop_timeout", "s", "Timeout (in seconds) to stop a container"),
    (("--storage-opt",), "storage_opt", "l", "Storage driver options for the container"),
    (("--sysctl",), "sysctl", "l", "Sysctl options"),
    (("--tmpfs",), "tmpfs", "l", "Mount a tmpfs directory"),
    (("-t", "--tty"), "tty", "b", "Allocate a pseudo-TTY"),
    (("--ulimit",), "ulimit", "l", "Ulimit options"),
    (("-u", "--user"), "user", "s", "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("--userns",), "userns", "s", "User namespace to use"),
    (("--uts",), "uts", "s", "UTS namespace to use"),
    (("-v", "--volume"), "volume", "l", "Bind mount a volume"),
    (("--volume-driver",), "volume_driver", "s", "Optional volume driver for the container"),
    (("--volumes-from",), "volumes_from", "l", "Mount volumes from the specified container(s)"),
    (("-w", "--workdir"), "workdir", "s", "Working directory inside the container"),
]
RUN_ONLY = {"detach", "detach_keys", "rm", "sig_proxy"}
SPEC: dict[str, tuple[str, str]] = {s: (key, kind) for sp, key, kind, _ in FLAGS for s in sp}


# The program's name in messages, where docker's CLI puts its own ("docker: ...").
PROG = "dockyard"


class UsageError(Exception):
    """A bad flag or value: printed with `See 'dockyard run --help'.`"""


def defaults(cmd: str = "run") -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _, key, kind, _ in FLAGS:
        if cmd != "run" and key in RUN_ONLY:
            continue
        d[key] = False if kind == "b" else ([] if kind == "l" else None)
    if cmd == "run":
        d["sig_proxy"] = True
    return d


def _bool(v: str, flag: str) -> bool:
    lv = v.lower()
    if lv in ("1", "t", "true"):
        return True
    if lv in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseBool: parsing '
                     f'"{v}": invalid syntax')


def parse_args(argv: list[str], cmd: str = "run") -> tuple[dict[str, Any], set[str], str,
                                                             list[str]]:
    """pflag-style: returns (options, flags changed, image, command)."""
    opts = defaults(cmd)
    changed: set[str] = set()

    def put(flag: str, key: str, kind: str, v: Any) -> None:
        if cmd != "run" and key in RUN_ONLY:
            raise UsageError(f"unknown flag: {flag}")
        changed.add(key)
        if kind == "l":
            opts[key].append(v)
        else:
            opts[key] = v

    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            spec = SPEC.get(name)
            if spec is None:
                raise UsageError(f"unknown flag: {name}")
            key, kind = spec
            if kind == "b":
                put(name, key, kind, _bool(val, name) if eq else True)
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    val = argv[i]
                put(name, key, kind, val)
            i += 1
            continue
        j = 1
        while j < len(a):
            c = a[j]
            spec = SPEC.get("-" + c)
            if spec is None:
                raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
            key, kind = spec
            rest = a[j + 1:]
            if kind == "b":
                if rest.startswith("="):
                    put("-" + c, key, kind, _bool(rest[1:], "-" + c))
                    break
                put("-" + c, key, kind, True)
                j += 1
                continue
            if rest:
                val = rest[1:] if rest.startswith("=") else rest
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: '{c}' in -{c}")
                val = argv[i]
            put("-" + c, key, kind, val)
            break
        i += 1
    if i >= len(argv):
        raise UsageError(f'"{PROG} {cmd}" requires at least 1 argument.')
    return opts, changed, argv[i], argv[i + 1:]
