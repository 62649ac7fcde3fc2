"""What every part of the daemon's HTTP side shares: the API version served,
the Server header, and the route table that route modules register into."""

from __future__ import annotations

from typing import Any

from .. import __version__

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
SERVER = f"Dockyard/{__version__} (linux)"


class VersionedApp:
    """Routes are registered once and served with and without `/v1.xx`."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Any]] = []

    def add(self, method: str, path: str, handler: Any) -> None:
        self.routes.append((method, path, handler))
