"""roomscan: turn listing photos into trustworthy amenity data.

The public surface is small on purpose; heavy modules (torch, transformers, FastAPI) load lazily inside the
modules that need them so that ``import roomscan`` and ``roomscan --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
