"""Dockyard: a Docker-compatible container engine with a Rust core.

`dockyard.Engine` is the typed API over the same code the daemon serves.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `dockyard version` does not pay for the engine's imports.
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)
