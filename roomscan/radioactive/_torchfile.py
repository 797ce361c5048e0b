"""Reading and writing roomscan's torch files (marking networks, classifiers): a dict of plain values and tensors,
saved atomically and loaded with ``weights_only=True`` (no pickle), every field checked with a message that names
the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from roomscan.radioactive.errors import RadioactiveError


def write_payload(payload: dict[str, Any], path: str | os.PathLike[str], *, prefix: str) -> Path:
    """Save ``payload`` to ``path`` through a temporary file in the same folder, so a crash leaves no half file."""
    path = Path(path)
    if path.is_dir():
        raise RadioactiveError(f"{path}: is a directory; give a file name, e.g. {path / (prefix + '.pt')}")
    if not path.parent.is_dir():
        raise RadioactiveError(f"{path}: its folder {path.parent} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{prefix}-", suffix=".pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_payload(
    path: str | os.PathLike[str],
    *,
    kind: str,
    writer: str,
    file_format: str,
    version: int,
    file_kind: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The checked payload of a file written by ``writer``: it exists, loads without pickle, and carries
    ``file_format`` and ``version``. ``kind`` names what it holds in messages ("marking network", "image
    classifier"), ``file_kind`` the file ("classifier file"; default ``kind``)."""
    path = Path(path)
    file_kind = file_kind or kind
    if not path.is_file():
        raise RadioactiveError(f"{path}: no such {file_kind} file; check the path")
    expected = f"(a file written by {writer} is expected)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises many types on foreign files
        raise RadioactiveError(f"{path}: not a roomscan {kind} {expected}: {str(exc).splitlines()[0]}") from None
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise RadioactiveError(f"{path}: not a roomscan {kind} {expected}")
    if payload.get("version") != version:
        raise RadioactiveError(f"{path}: {file_kind} file version {payload.get('version')!r} is not one this roomscan reads")
    return path, payload


def load_weights(module: nn.Module, payload: dict[str, Any], path: Path, kind: str) -> None:
    """Load the payload's ``state_dict`` into ``module``, strictly."""
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise RadioactiveError(f"{path}: not a roomscan {kind}: it holds no weights")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RadioactiveError(f"{path}: the weights do not fit the stored config: {str(exc).splitlines()[0]}") from None
