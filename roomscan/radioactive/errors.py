"""The one error of the radioactive-data package."""

from __future__ import annotations

from roomscan.errors import RoomscanError

__all__ = ["RadioactiveError"]


class RadioactiveError(RoomscanError, ValueError):
    """A marking key, marking network, image or option that cannot be used; the message says what to do."""
