"""Domain errors: what library code raises when a request cannot be served.

Library code (``shared/``, the gateway's domain modules) raises these and never an HTTP type; the
gateway maps each class to its status once, where the app is built (``services/gateway/errors.py``).
The message is the readable reason a client sees as ``{"detail": ...}``.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a client can be told about; ``str(error)`` is the reason."""

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers


class NotFound(DomainError, LookupError):
    """An id or path that names nothing (a frame, media, job, cluster, collection, folder)."""


class Conflict(DomainError):
    """The thing exists but is not in a state that allows this yet (e.g. a frame not embedded)."""


class BadInput(DomainError, ValueError):
    """The request's content cannot be used (an empty image, a malformed body, a bad name)."""


class InvalidParameter(DomainError, ValueError):
    """A parameter is out of its allowed range or empty (answered like a validation error)."""


class Unauthenticated(DomainError):
    """Nobody known made this request: no session, key or token, or a wrong one (or a wrong password)."""


class Forbidden(DomainError):
    """Allowed to nobody: a path outside the ingest roots, a feature switched off."""


class TooManyAttempts(DomainError):
    """Too many failed tries from this client or for this account; ``headers`` carry Retry-After."""


class TooLarge(DomainError):
    """Over a configured limit (bytes, files)."""


class UnsupportedType(DomainError):
    """The body is not of a type this route takes."""


class InsufficientStorage(DomainError):
    """The data volume has no room for this (it would leave less than the configured reserve, or is full)."""


class Unavailable(DomainError):
    """A service this one needs (the queue, the embedder, every index shard) cannot answer now."""


def too_large_message(what: str, limit: int, setting: str) -> str:
    """``the upload is larger than the limit of 2147483648 bytes (MEDIASEARCH_MAX_UPLOAD_BYTES)``."""
    return f"{what} is larger than the limit of {limit} bytes ({setting})"


def missing_ids_message(noun: str, ids: list[int], limit: int = 20) -> str:
    """``no media with ids 4, 9 ...``: the ids a request named that do not exist, the first ``limit`` shown."""
    shown = ", ".join(str(i) for i in ids[:limit]) + (" ..." if len(ids) > limit else "")
    return f"no {noun} with id{'s' if len(ids) > 1 else ''} {shown}"
