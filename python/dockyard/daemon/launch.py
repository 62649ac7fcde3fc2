"""An ordinary user's `dockyard daemon`: run it again as root of a user and
mount namespace of its own (`dockyard-shim rootless-init`). Kept apart from
main.py so that the launcher, which only execs, loads none of the server."""

from __future__ import annotations

import os
import sys

from .. import rootless
from .config import DaemonConfig


def enter_rootless(cfg: DaemonConfig) -> int:
    """Exec the launcher; returns (1) only on failure, having said why."""
    from .. import _core

    p = rootless.user_paths(os.geteuid())
    try:
        if p.fallback:
            rootless.make_fallback_dir(p.runtime_dir)
    except OSError as e:
        print(f"failed to start daemon: {e}", file=sys.stderr)
        return 1
    print(rootless.enter([sys.executable, "-m", "dockyard", *sys.argv[1:]], _core.shim_path()),
          file=sys.stderr)
    return 1
