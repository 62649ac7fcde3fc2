"""Containers: their records (`model.py`, `records.py`), the runtime spec built
from Docker's Config and HostConfig (`spec.py`, `config.py`; `oci.py` for
runc), the lifecycle (`service.py`) over the records kept in line with the
shims (`reconcile.py`), exec instances (`execs.py`), json-file logs
(`logs.py`) and the shim's attach protocol (`attach.py`).

The operations on one container each have a module: `pause.py`, `top.py`,
`stats.py` (over `cgroups.py`), `rootfs.py` (diff, export), `commit.py` and
`archive.py` (`docker cp`, over `scopedpath.py`)."""
