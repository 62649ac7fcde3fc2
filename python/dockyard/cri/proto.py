"""The CRI `runtime.v1` messages and service stubs, generated when first
needed from the proto that the build copies here from the k8s-cri crate
(rust/core/build.rs). grpcio-tools compiles it in-process: ~0.2 s, paid only
by a daemon started with --cri."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("api.proto")


class ProtoMissing(RuntimeError):
    pass


@functools.cache
def load() -> tuple[ModuleType, ModuleType]:
    """(messages, services): api_pb2 and api_pb2_grpc."""
    if not PROTO.exists():
        raise ProtoMissing(f"{PROTO} is missing: it is copied there when the Rust core is "
                           "built (make core, pip install)")
    try:
        import grpc
    except ImportError:
        raise ProtoMissing("the CRI needs grpcio and grpcio-tools: "
                           "pip install 'dockyard[cri]'") from None
    # protos_and_services resolves the name against sys.path.
    root = str(PROTO.parents[2])
    if root not in sys.path:
        sys.path.append(root)
    return grpc.protos_and_services("dockyard/cri/api.proto")
