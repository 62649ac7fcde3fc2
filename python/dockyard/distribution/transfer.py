"""What a pull or a push works with, handed to it by the engine (moby's
`distribution.Config`): the registry options, the local store, the event log,
and the engine-wide table of layers being fetched.

Two pulls in one engine that need the same layer fetch it once: the first
claims it in `Inflight`, the other waits for that claim to be committed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..events import EventLog
from ..store.local import LocalStore
from . import RegistryOptions


@dataclass
class Slot:
    """One layer being fetched by some pull in this engine."""

    chain_id: str
    cache_id: str | None
    parent_cache: str | None = None  # what its directory was prepared on
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Inflight:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slots: dict[str, Slot] = {}


@dataclass(frozen=True)
class TransferConfig:
    #: The daemon's SIGHUP reload changes its fields in place: read them per use.
    options: RegistryOptions
    store: LocalStore
    events: EventLog
    inflight: Inflight
