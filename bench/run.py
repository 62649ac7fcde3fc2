"""Run every benchmark in bench/ in one go (as root), printing side-by-side tables."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["extract.py", "cli_startup.py", "images.py", "containers.py", "network.py", "volumes.py", "build.py", "pull.py", "soak.py"]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    only = sys.argv[1:]
    for name in ORDER:
        if only and name.removesuffix(".py") not in only:
            continue
        path = HERE / name
        if path.exists():
            print(f"=== {name}")
            runpy.run_path(str(path), run_name="__main__")
