"""Errors a user can act on. Each message says what was wrong and what to do."""

from __future__ import annotations


class RoomscanError(Exception):
    """Base class: an error whose message is meant for the user, shown without a traceback."""


class ImageError(RoomscanError, ValueError):
    """An image could not be read: missing, empty, corrupt, truncated, not an image, or too large.

    ``kind`` says which, for callers that map it to a status (``missing``, ``unreadable``, ``empty``,
    ``not_image``, ``unsupported``, ``corrupt``, ``truncated``, ``too_large``).
    """

    def __init__(self, message: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        self.kind = kind


class TaxonomyError(RoomscanError, ValueError):
    """A taxonomy file is missing or malformed, or names an unknown amenity."""


class ModelUnavailableError(RoomscanError):
    """Model weights are not available locally and could not be fetched."""


class NotFoundError(RoomscanError, LookupError):
    """A listing, photo or other record does not exist."""


class AuthenticationError(RoomscanError):
    """No API key, an unknown one or a revoked one (HTTP 401)."""


class PermissionDeniedError(RoomscanError):
    """A valid key without the right to do this: another host's listing, an admin's task (HTTP 403)."""


class ListingError(RoomscanError, ValueError):
    """A listing field a host gave is unusable: a bedroom count out of range (HTTP 422)."""
