"""`docker update`: new resource limits or restart policy for one or more
containers. Only the flags given are sent; the daemon checks the values
(docker's CLI parses sizes and numbers, nothing more)."""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional

import typer

from ..client import APIError, ConnectError, path_quote
from ..common import client, fail
from ..runflags import UsageError
from ..runopts import ram_in_bytes

USAGE = ("\nUsage:  dockyard update [OPTIONS] CONTAINER [CONTAINER...]\n\n"
         "Run 'dockyard update --help' for more information")


def _flag(flag: str, value: str, parse: Callable[[str], int]) -> int:
    try:
        return parse(value)
    except (UsageError, ValueError) as e:
        fail(f'invalid argument "{value}" for "{flag}" flag: {e}{USAGE}', 125)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def _uint16(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f'strconv.ParseUint: parsing "{value}": invalid syntax') from None
    if not 0 <= n <= 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{value}": value out of range')
    return n


def _swap(value: str) -> int:
    return -1 if value == "-1" else ram_in_bytes(value)


def _nano_cpus(value: str) -> int:
    try:
        return int(round(float(value) * 1e9))
    except ValueError:
        raise ValueError(f"failed to parse {value} as a rational number") from None


def _restart_policy(value: str) -> dict[str, Any]:
    """opts.ParseRestartPolicy: the name is the daemon's to check."""
    parts = value.split(":")
    if len(parts) > 2:
        fail("invalid restart policy format")
    count = 0
    if len(parts) == 2:
        try:
            count = int(parts[1])
        except ValueError:
            fail("invalid restart policy format: maximum retry count must be an integer")
    return {"Name": parts[0], "MaximumRetryCount": count}


def update(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
           blkio_weight: Optional[str] = typer.Option(
               None, "--blkio-weight", help="Block IO (relative weight), between 10 and 1000, "
               "or 0 to disable (default 0)"),
           cpu_period: Optional[str] = typer.Option(
               None, "--cpu-period", help="Limit CPU CFS (Completely Fair Scheduler) period"),
           cpu_quota: Optional[str] = typer.Option(
               None, "--cpu-quota", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
           cpu_rt_period: Optional[str] = typer.Option(
               None, "--cpu-rt-period", help="Limit the CPU real-time period in microseconds"),
           cpu_rt_runtime: Optional[str] = typer.Option(
               None, "--cpu-rt-runtime", help="Limit the CPU real-time runtime in microseconds"),
           cpu_shares: Optional[str] = typer.Option(
               None, "-c", "--cpu-shares", help="CPU shares (relative weight)"),
           cpus: Optional[str] = typer.Option(None, "--cpus", help="Number of CPUs"),
           cpuset_cpus: Optional[str] = typer.Option(
               None, "--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)"),
           cpuset_mems: Optional[str] = typer.Option(
               None, "--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)"),
           kernel_memory: Optional[str] = typer.Option(
               None, "--kernel-memory", help="Kernel memory limit"),
           memory: Optional[str] = typer.Option(None, "-m", "--memory", help="Memory limit"),
           memory_reservation: Optional[str] = typer.Option(
               None, "--memory-reservation", help="Memory soft limit"),
           memory_swap: Optional[str] = typer.Option(
               None, "--memory-swap", help="Swap limit equal to memory plus swap: '-1' to "
               "enable unlimited swap"),
           pids_limit: Optional[str] = typer.Option(
               None, "--pids-limit", help="Tune container pids limit (set -1 for unlimited)"),
           restart: Optional[str] = typer.Option(
               None, "--restart", help="Restart policy to apply when a container exits")
           ) -> None:
    """Update configuration of one or more containers"""
    given = {k: v for k, v in locals().items() if k != "containers" and v is not None}
    if not given:
        fail("you must provide one or more flags when using this command")
    body: dict[str, Any] = {}
    ints = (("BlkioWeight", blkio_weight, "--blkio-weight", _uint16),
            ("CpuPeriod", cpu_period, "--cpu-period", _int),
            ("CpuQuota", cpu_quota, "--cpu-quota", _int),
            ("CpuRealtimePeriod", cpu_rt_period, "--cpu-rt-period", _int),
            ("CpuRealtimeRuntime", cpu_rt_runtime, "--cpu-rt-runtime", _int),
            ("CpuShares", cpu_shares, "-c, --cpu-shares", _int),
            ("NanoCpus", cpus, "--cpus", _nano_cpus),
            ("KernelMemory", kernel_memory, "--kernel-memory", ram_in_bytes),
            ("Memory", memory, "-m, --memory", ram_in_bytes),
            ("MemoryReservation", memory_reservation, "--memory-reservation", ram_in_bytes),
            ("MemorySwap", memory_swap, "--memory-swap", _swap),
            ("PidsLimit", pids_limit, "--pids-limit", _int))
    for key, value, flag, parse in ints:
        if value is not None:
            body[key] = _flag(flag, value, parse)
    # As docker's Go client: zero values are left out (omitempty), --pids-limit is not.
    body = {k: v for k, v in body.items() if v or k == "PidsLimit"}
    if cpuset_cpus:
        body["CpusetCpus"] = cpuset_cpus
    if cpuset_mems:
        body["CpusetMems"] = cpuset_mems
    if restart is not None:
        body["RestartPolicy"] = _restart_policy(restart)
    warnings: list[str] = []
    errors: list[str] = []
    for name in containers:
        try:
            out = client().post_json(f"/containers/{path_quote(name)}/update", body=body)
        except APIError as e:
            errors.append(f"Error response from daemon: {e.message}")
            continue
        except ConnectError as e:
            fail(str(e))
        print(name)
        sys.stdout.flush()
        warnings.extend((out or {}).get("Warnings") or [])
    if warnings:  # docker's CLI prints them on stdout, after the names
        print("\n".join(warnings))
    if errors:
        fail("\n".join(errors))
