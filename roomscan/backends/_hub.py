"""Find model weights: a known name, a Hugging Face hub id, or a local directory.

Hub models are looked up in the local Hugging Face cache first and downloaded only when missing (unless offline);
every way of failing ends in one :class:`~roomscan.errors.ModelUnavailableError` that says which model is missing,
where it was looked for and how to get it. Nothing here imports torch; ``huggingface_hub`` loads on first use.

Example:
    >>> resolved = resolve_model("owlv2")  # doctest: +SKIP
    >>> resolved.name, resolved.version[:7]
    ('google/owlv2-base-patch16-ensemble', 'c2b4f4e')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from roomscan.errors import ModelUnavailableError

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "KnownModel",
    "ModelStatus",
    "ResolvedModel",
    "hf_cache_dir",
    "list_models",
    "pull_model",
    "read_model_config",
    "resolve_model",
    "weights_version",
]


class KnownModel(NamedTuple):
    """A model roomscan knows by a short name."""

    hub_id: str
    backend: str
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    "owlv2": KnownModel(
        "google/owlv2-base-patch16-ensemble",
        "owlv2",
        "OWLv2 ViT-B/16, open vocabulary: finds any amenity the taxonomy describes (default; 960 px)",
    ),
    "owlv2-large": KnownModel(
        "google/owlv2-large-patch14-ensemble",
        "owlv2",
        "OWLv2 ViT-L/14: more accurate, about 4x slower than owlv2 (1008 px)",
    ),
}
DEFAULT_MODEL = "owlv2"

# Files whose bytes are the weights: what a local directory's version hashes, and what a usable snapshot holds.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
# What a download fetches: configs, tokenizer files and safetensors weights (hub repos often carry the same
# weights twice, as .bin too; we fetch .bin only when a repo has no safetensors).
_DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.yaml", "*.model", "*.safetensors"]
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ResolvedModel:
    """A model spec resolved to a local directory.

    Attributes:
        path: the directory holding config and weights.
        name: the hub id, or the directory's absolute path.
        version: the hub commit hash, or a short hash of the local weight files.
        backend: the backend a known name implies, else ``None`` (inspect ``config.json``).
    """

    path: Path
    name: str
    version: str
    backend: str | None = None


@dataclass(frozen=True)
class ModelStatus:
    """One known model and whether it is ready to use offline (see :func:`list_models`)."""

    name: str
    hub_id: str
    backend: str
    description: str
    cached: bool
    path: Path | None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME``...).

    Read at call time rather than from ``huggingface_hub.constants``, which freezes it at import.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _timeout() -> float:
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, or ``None`` when a TCP connection opens (or a proxy is configured).

    huggingface_hub's metadata requests run without a timeout; where a firewall drops packets they would hang, so
    we try one connection with a short timeout first and fail fast.
    """
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=min(_timeout(), 5.0)):
            return None
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc})"


def _has_weights(path: Path) -> bool:
    return any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file())


def _missing(label: str, hub_id: str, reason: str, *, tried_hub: bool) -> ModelUnavailableError:
    where = f"in the Hugging Face cache at {hf_cache_dir()}"
    where += f" and on the hub ({_endpoint()})" if tried_hub else " (the hub was not tried)"
    pull = label if label in KNOWN_MODELS else hub_id
    return ModelUnavailableError(
        f"model {label!r} ({hub_id}) is not available: {reason}. Looked {where}. To get it, run "
        f"`roomscan models pull {pull}` on a machine with internet access (then copy the cache "
        "~/.cache/huggingface to this machine, or use --model PATH), or pass --model PATH to a local model "
        "directory."
    )


def _cached_snapshot(hub_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(hub_id, cache_dir=hf_cache_dir(), local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if path.is_dir() and _has_weights(path) else None


def _download(hub_id: str, label: str) -> Path:
    """Download ``hub_id`` into the cache (tqdm progress on stderr); raise ModelUnavailableError on failure."""
    if _offline():
        raise _missing(
            label, hub_id, "not in the cache, and offline mode is on (HF_HUB_OFFLINE=1)", tried_hub=False
        )
    reason = _hub_unreachable()
    if reason:
        raise _missing(
            label, hub_id, f"not in the cache, and the hub cannot be reached: {reason}", tried_hub=True
        )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    kwargs: dict[str, Any] = {"cache_dir": hf_cache_dir(), "etag_timeout": _timeout()}
    try:
        path = Path(snapshot_download(hub_id, allow_patterns=_DOWNLOAD_PATTERNS, **kwargs))
        if not _has_weights(path):
            path = Path(snapshot_download(hub_id, allow_patterns=[*_DOWNLOAD_PATTERNS, "*.bin"], **kwargs))
    except RepositoryNotFoundError as exc:
        raise _missing(
            label, hub_id, "the hub has no such repository (or it is private)", tried_hub=True
        ) from exc
    except Exception as exc:  # the hub client's errors (and its HTTP library) vary by version
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _missing(label, hub_id, f"the download failed ({first_line})", tried_hub=True) from exc
    if not _has_weights(path):
        raise _missing(label, hub_id, "the hub repository holds no weight files", tried_hub=True)
    return path


def _spec_text(spec: str | os.PathLike[str]) -> str:
    text = os.fspath(spec)
    if not isinstance(text, str) or not text.strip():
        raise ModelUnavailableError(
            f"empty model name; use one of {', '.join(KNOWN_MODELS)}, a hub id or a directory"
        )
    return text.strip()


def _local_dir(text: str) -> Path | None:
    """The directory ``text`` names, ``None`` when it names nothing; raise when it names a file."""
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailableError(
                f"{text}: not a model directory (no config.json); a model directory holds config.json, the "
                "weights and the processor files, as written by save_pretrained"
            )
        if not _has_weights(path):
            raise ModelUnavailableError(
                f"{text}: no weight files (model.safetensors or pytorch_model.bin) in this model directory"
            )
        return path.resolve()
    if path.exists():
        raise ModelUnavailableError(
            f"{text}: is a file; --model takes a model directory, a hub id or a known name"
        )
    return None


def resolve_model(spec: str | os.PathLike[str] | ResolvedModel, *, download: bool = True) -> ResolvedModel:
    """Resolve a model spec to a local directory, downloading hub models when needed and allowed.

    Args:
        spec: a known name (``owlv2``, see :data:`KNOWN_MODELS`), a hub id (``org/name``) or a local directory.
        download: fetch a hub model missing from the cache (ignored when ``HF_HUB_OFFLINE=1``).

    Raises:
        ModelUnavailableError: not cached and cannot be downloaded, no such directory, or a directory that holds
            no model; the message says where roomscan looked and how to get the model.
    """
    if isinstance(spec, ResolvedModel):
        return spec
    text = _spec_text(spec)
    known = KNOWN_MODELS.get(text)
    hub_id = known.hub_id if known else None
    if hub_id is None:
        local = _local_dir(text)
        if local is not None:
            return ResolvedModel(local, str(local), weights_version(local))
        if not _HUB_ID_RE.match(text):
            raise ModelUnavailableError(
                f"{text}: no such model directory, and not a known model name ({', '.join(KNOWN_MODELS)}) or a "
                "hub id (org/name)"
            )
        hub_id = text
    path = _cached_snapshot(hub_id)
    if path is None:
        if not download:
            raise _missing(text, hub_id, "not in the cache", tried_hub=False)
        path = _download(hub_id, text)
    return ResolvedModel(path, hub_id, path.name, known.backend if known else None)


def pull_model(spec: str | os.PathLike[str]) -> Path:
    """Download (or update) a hub model into the Hugging Face cache, showing progress; returns its directory.

    A local directory is checked and returned as is.

    Raises:
        ModelUnavailableError: offline, no network, or no such repository.

    Example:
        >>> pull_model("owlv2")  # doctest: +SKIP
        PosixPath('/home/me/.cache/huggingface/hub/models--google--owlv2-base-patch16-ensemble/snapshots/...')
    """
    text = _spec_text(spec)
    known = KNOWN_MODELS.get(text)
    if known is None:
        local = _local_dir(text)
        if local is not None:
            return local
        if not _HUB_ID_RE.match(text):
            raise ModelUnavailableError(
                f"{text}: not a known model name ({', '.join(KNOWN_MODELS)}), a hub id (org/name) or a directory"
            )
    return _download(known.hub_id if known else text, text)


def list_models() -> list[ModelStatus]:
    """The known models, with their hub ids and whether each is in the local cache (usable offline)."""
    out = []
    for name, known in KNOWN_MODELS.items():
        path = _cached_snapshot(known.hub_id)
        out.append(ModelStatus(name, known.hub_id, known.backend, known.description, path is not None, path))
    return out


_VERSION_CACHE: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def weights_version(path: str | os.PathLike[str]) -> str:
    """Short sha256 of a model directory's weight files (names and bytes), cached by size and mtime.

    A model directory has no commit hash; the hash of its weights changes exactly when they do. Each file is read
    once per process (about a second for OWLv2-base's 620 MB).
    """
    root = Path(path)
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    stats = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(root.resolve()), stats)
    if key not in _VERSION_CACHE:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\0")
            with p.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        _VERSION_CACHE[key] = digest.hexdigest()[:16]
    return _VERSION_CACHE[key]


def read_model_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model directory's ``config.json`` as a dict.

    Raises:
        ModelUnavailableError: the file is missing or is not a JSON object with a ``model_type``.
    """
    file = Path(path) / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelUnavailableError(f"{path}: not a model directory (no config.json)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"{file}: not a readable JSON model config ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelUnavailableError(f"{file}: not a transformers model config (no 'model_type')")
    return config
