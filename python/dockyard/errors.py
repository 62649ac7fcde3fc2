"""Exceptions raised by Dockyard (the Rust core raises these same classes).

Each class carries the HTTP status the Engine API answers with, so the daemon
maps errors to responses in one place (`daemon/errors.py`).
"""


class DockyardError(Exception):
    status = 500


class InvalidParameter(DockyardError, ValueError):
    status = 400


class InvalidReference(InvalidParameter):
    pass


class NotFound(DockyardError):
    status = 404


class ImageNotFound(NotFound):
    pass


class Conflict(DockyardError):
    status = 409


class AmbiguousPrefix(InvalidParameter):
    pass


class LayerCorrupt(DockyardError):
    status = 400


class UnsafePath(LayerCorrupt):
    pass


class MountError(DockyardError):
    pass


class StorageDriverError(DockyardError):
    pass


class NetworkSetupError(DockyardError):
    """The kernel refused a container's network namespace or veths at its
    start (a bridge gone, an address taken): dockerd's 500."""


class DaemonUnreachable(DockyardError):
    pass


class IDNotFound(NotFound):
    """No stored ID starts with the given prefix (`dockyard.ids`)."""


class RegistryError(DockyardError):
    """A registry answered with an error, or could not be reached."""


class RegistryNotFound(RegistryError, NotFound):
    """Docker answers 404 for unknown manifests and denied repositories."""

    status = 404


class Unauthorized(RegistryError):
    status = 401


class BlobCorrupt(RegistryError):
    """A blob's bytes don't match its digest (or were cut short)."""
