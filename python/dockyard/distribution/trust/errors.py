"""Failures of a trust operation, named as notary's client names them so the CLI
can word each as docker does."""

from __future__ import annotations


class TrustError(Exception):
    """Base class; str() is notary's message."""


class RepositoryNotExist(TrustError):
    """The server has no trust data for the GUN (404 on its metadata)."""

    def __init__(self, server: str, gun: str) -> None:
        super().__init__(f"notary repository {gun} does not exist on {server}")  # not shown as is
        self.server, self.gun = server, gun


class MetaNotFound(TrustError):
    pass


class NetworkError(TrustError):
    pass


class NoSuchTarget(TrustError):
    def __init__(self, name: str) -> None:
        super().__init__(f"No valid trust data for {name}")
        self.name = name


class ValidationError(TrustError):
    """A signature, hash, threshold, expiry or certificate check failed."""


class KeyNotFound(TrustError):
    pass


class PassphraseError(TrustError):
    """No usable passphrase; `giveup` when the retriever says to stop asking."""

    def __init__(self, message: str, giveup: bool = False) -> None:
        super().__init__(message)
        self.giveup = giveup


class ServerError(TrustError):
    """The server refused a request (400: notary's ErrInvalidOperation)."""


class ServerUnavailable(ServerError):
    """Any other status (notary's ErrServerUnavailable)."""

    def __init__(self, status: int) -> None:
        super().__init__("you are not authorized to perform this operation: server returned 401."
                         if status == 401 else
                         f"unable to reach trust server at this time: {status}.")
        self.status = status
