"""The Engine API's /build endpoints, over the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api import VersionedApp


def register(routes: VersionedApp) -> None:
    """No /build routes are served yet; they arrive with their capability."""
