"""A container's configuration at create time, as dockerd makes it: the
image's config merged under the user's, the HostConfig and Healthcheck
checks and the name rule (LogConfig: logdrivers.py)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidParameter
from ..rootless import limits_refusal, rootless_uid
from .process import signal_number
from .spec import parse_ulimit, security_opts


def valid_name(name: str) -> bool:
    return bool(re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name))


def merge_image_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """Docker's merge of the image's config under the user's (daemon/create.go)."""
    cfg = dict(user)
    if not cfg.get("User") and image.get("User"):
        cfg["User"] = image["User"]
    env = list(image.get("Env") or [])
    for e in user.get("Env") or []:
        k = e.split("=", 1)[0]
        env = [x for x in env if x.split("=", 1)[0] != k] + [e]
    cfg["Env"] = env
    labels = dict(image.get("Labels") or {})
    labels.update(user.get("Labels") or {})
    cfg["Labels"] = labels
    if user.get("Entrypoint") == [""]:
        cfg["Entrypoint"] = None  # `--entrypoint ""`: the image's is reset, as dockerd does
        if not user.get("Cmd"):
            cfg["Cmd"] = image.get("Cmd")
    elif not user.get("Entrypoint") and not user.get("Cmd"):
        cfg["Cmd"] = image.get("Cmd")
        cfg["Entrypoint"] = image.get("Entrypoint")
    elif not user.get("Entrypoint"):
        cfg["Entrypoint"] = image.get("Entrypoint")
    if not cfg.get("WorkingDir"):
        cfg["WorkingDir"] = image.get("WorkingDir") or ""
    if not cfg.get("StopSignal") and image.get("StopSignal"):
        cfg["StopSignal"] = image["StopSignal"]
    for k in ("ExposedPorts", "Volumes"):
        merged = dict(image.get(k) or {})
        merged.update(user.get(k) or {})
        cfg[k] = merged or None
    health = merge_healthcheck(user.get("Healthcheck"), image.get("Healthcheck"))
    cfg.pop("Healthcheck", None)
    if health is not None:
        cfg["Healthcheck"] = health
    cfg.setdefault("Hostname", "")
    cfg.setdefault("Domainname", "")
    cfg.setdefault("Tty", False)
    cfg.setdefault("OpenStdin", False)
    cfg.setdefault("StdinOnce", False)
    cfg.setdefault("AttachStdin", False)
    cfg.setdefault("AttachStdout", False)
    cfg.setdefault("AttachStderr", False)
    cfg["Image"] = user.get("Image")
    return cfg


#: Go's HealthConfig fields (API 1.41), every one omitted when empty.
HEALTHCHECK_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")
#: dockerd's smallest Interval, Timeout and StartPeriod (container.MinimumDuration), in ns.
MINIMUM_DURATION = 1_000_000


def healthcheck_shape(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Healthcheck as dockerd keeps it: known fields, zero values left out."""
    if hc is None:
        return None
    return {k: hc[k] for k in HEALTHCHECK_FIELDS if hc.get(k)}


def merge_healthcheck(user: dict[str, Any] | None, image: dict[str, Any] | None
                      ) -> dict[str, Any] | None:
    """The image's HEALTHCHECK under the user's (daemon/commit.go merge): each
    field the user leaves empty (an empty Test included) comes from the image."""
    user, image = healthcheck_shape(user), healthcheck_shape(image)
    if user is None or image is None:
        return user if user is not None else image
    merged = dict(user)
    for k in HEALTHCHECK_FIELDS:
        if not merged.get(k) and image.get(k):
            merged[k] = image[k]
    return {k: merged[k] for k in HEALTHCHECK_FIELDS if k in merged}


def validate_healthcheck(hc: dict[str, Any] | None) -> None:
    """dockerd's checks of the user's Healthcheck (verifyContainerSettings)."""
    if not hc:
        return
    for k in ("Interval", "Timeout", "Retries", "StartPeriod"):
        v = int(hc.get(k) or 0)
        if k == "Retries" and v < 0:
            raise InvalidParameter("Retries in Healthcheck cannot be negative")
        if k != "Retries" and v and v < MINIMUM_DURATION:
            raise InvalidParameter(f"{k} in Healthcheck cannot be less than 1ms")


def validate_config(cfg: dict[str, Any]) -> None:
    """dockerd's checks of the merged Config at create."""
    wd = cfg.get("WorkingDir") or ""
    if wd and not wd.startswith("/"):
        raise InvalidParameter(f"the working directory '{wd}' is invalid, it needs to be an "
                               "absolute path")
    if cfg.get("StopSignal"):
        signal_number(cfg["StopSignal"])  # "Invalid signal: X"


def validate_hostconfig(hc: dict[str, Any]) -> None:
    security_opts(hc.get("SecurityOpt"))
    mem = int(hc.get("Memory") or 0)
    if mem and mem < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    swap = int(hc.get("MemorySwap") or 0)
    if swap > 0 and mem and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if swap > 0 and not mem:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap "
                               "limit, see usage")
    for u in hc.get("Ulimits") or []:
        parse_ulimit(u)
    pol = (hc.get("RestartPolicy") or {}).get("Name") or "no"
    if pol not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise InvalidParameter(f"invalid restart policy '{pol}'")
    if hc.get("AutoRemove") and pol not in ("no", ""):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    mode = hc.get("CgroupnsMode") or ""
    if mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {mode}")
    parent = hc.get("CgroupParent") or ""
    if any(p in (".", "..") for p in parent.split("/")):
        raise InvalidParameter(f"invalid cgroup parent {parent!r}")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    uid = rootless_uid()
    if uid is not None:
        why = limits_refusal(hc, uid)
        if why:
            # Refused, never silently dropped (Docker rootless ignores them on such hosts).
            raise InvalidParameter(why)
        adj = int(hc.get("OomScoreAdj") or 0)
        own = _own_oom_score_adj()
        if adj < own:
            raise InvalidParameter(f"rootless: --oom-score-adj {adj} is below the daemon's own "
                                   f"({own}): an unprivileged user can only raise it")


def _own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def check_userns(hc: dict[str, Any]) -> None:
    """dockerd's refusals under --userns-remap, for a container in the user
    namespace (any UsernsMode but "host")."""
    if (hc.get("UsernsMode") or "") == "host":
        return
    if hc.get("Privileged"):
        raise InvalidParameter("privileged mode is incompatible with user namespaces.  You must "
                               "run the container in the host namespace when running "
                               "privileged mode")
    if hc.get("NetworkMode") == "host":
        raise InvalidParameter("cannot share the host's network namespace when user namespaces "
                               "are enabled")
    if hc.get("PidMode") == "host":
        raise InvalidParameter("cannot share the host PID namespace when user namespaces are "
                               "enabled")
