"""The marking key: the secret that marks images and later proves a model was trained on them.

A key holds the carriers (one random unit direction per class or set, in the marking network's feature space), the
identity of the marking network (architecture, config, SHA-256 of its weights), the marking settings and the files
that were marked. It is saved as a ``.npz`` holding two arrays and nothing that needs pickle: ``carriers`` (float64
``[n, d]``) and ``metadata`` (a JSON string). :meth:`MarkingKey.load` checks everything and raises
:class:`~roomscan.radioactive.errors.RadioactiveError` with a message naming the problem.

Keep keys private: anyone holding one can tell marked images from unmarked ones, or try to wash the mark out.

Example:
    >>> from roomscan.radioactive.stats import random_carriers
    >>> net = NetworkIdentity("resnet-small", {"widths": [16, 32]}, "0" * 64, feature_dim=32)
    >>> key = MarkingKey.new(random_carriers(2, 32, seed=7), ("kitchen", "bedroom"), net, seed=7)
    >>> key.save("/tmp/listing-key.npz")                                   # doctest: +SKIP
    >>> MarkingKey.load("/tmp/listing-key.npz").names                      # doctest: +SKIP
    ('kitchen', 'bedroom')
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roomscan.radioactive.config import AugmentConfig
from roomscan.radioactive.errors import RadioactiveError

__all__ = ["KEY_FORMAT_VERSION", "MarkedFile", "MarkingKey", "NetworkIdentity"]

KEY_FORMAT_VERSION = 1
# float64 unit rows round-trip exactly; this only forgives carriers a caller built in float32.
_UNIT_TOLERANCE = 1e-5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise RadioactiveError(
            f"{what} must be a SHA-256 hex digest (64 lower-case hex digits), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class NetworkIdentity:
    """Which marking network a key belongs to: verification must use exactly this network's feature space.

    Attributes:
        architecture: a name, e.g. ``"resnet-small"`` (roomscan's own) or the name given to a pretrained backbone.
        config: the settings that rebuild it (a JSON-able dict).
        weights_sha256: SHA-256 of its weights (:func:`roomscan.radioactive.network.weights_sha256`).
        feature_dim: the dimension of its features, i.e. of the carriers.
    """

    architecture: str
    config: dict[str, Any]
    weights_sha256: str
    feature_dim: int

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise RadioactiveError("the marking network's architecture must be a non-empty name")
        if not isinstance(self.config, dict):
            raise RadioactiveError("the marking network's config must be a mapping")
        _check_sha(self.weights_sha256, "the marking network's weights_sha256")
        if (
            isinstance(self.feature_dim, bool)
            or not isinstance(self.feature_dim, int)
            or self.feature_dim < 2
        ):
            raise RadioactiveError(
                f"the marking network's feature_dim must be a whole number >= 2, got {self.feature_dim!r}"
            )

    def describe(self) -> str:
        return f"{self.architecture} (d={self.feature_dim}, weights {self.weights_sha256[:12]})"


@dataclass(frozen=True)
class MarkedFile:
    """One marked image: where it came from, where the marked copy went, and how much it changed.

    Attributes:
        source: the original file's path, as given when marking.
        output: the marked copy's path.
        name: the class or set it was marked for (one of the key's names).
        psnr: PSNR in dB of the marked copy (as written and decoded again) against the original (as decoded).
        linf: the largest change of any pixel channel, as a fraction of full scale (``10/255`` for 10 levels).
        sha256_original: SHA-256 of the original file's bytes.
        sha256_marked: SHA-256 of the marked file's bytes.
    """

    source: str
    output: str
    name: str
    psnr: float
    linf: float
    sha256_original: str
    sha256_marked: str

    def __post_init__(self) -> None:
        for attr in ("source", "output", "name"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr):
                raise RadioactiveError(f"a marked file's {attr} must be a non-empty string")
        for attr in ("psnr", "linf"):
            value = getattr(self, attr)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or math.isnan(value)
                or value < 0
            ):
                raise RadioactiveError(
                    f"marked file {self.source}: {attr} must be a number >= 0, got {value!r}"
                )
        _check_sha(self.sha256_original, f"marked file {self.source}: sha256_original")
        _check_sha(self.sha256_marked, f"marked file {self.source}: sha256_marked")


@dataclass(frozen=True, eq=False)
class MarkingKey:
    """Carriers plus everything needed to mark more images the same way and to verify a model later.

    Build one with :meth:`new`, add the marked files with :meth:`with_files`, :meth:`save` it, :meth:`load` it.

    Attributes:
        carriers: float64 ``[n, d]``, unit rows; row ``k`` is the direction images of ``names[k]`` are pushed along.
        names: the class (or set) of each carrier, unique.
        network: the marking network's identity; ``network.feature_dim == d``.
        seed: the seed of the carriers and of the marking's randomness.
        epsilon: the L-infinity bound on any pixel change, as a fraction of full scale.
        psnr_floor: the lowest PSNR (dB) any marked image may have.
        augment: the augmentation marks were made to survive, or ``None`` when marking used none.
        files: the marked files.
        created_at: when the key was made (ISO 8601, UTC).
        format_version: the key file format; :meth:`load` refuses versions it does not know.
    """

    carriers: NDArray[np.float64]
    names: tuple[str, ...]
    network: NetworkIdentity
    seed: int
    epsilon: float = 10 / 255
    psnr_floor: float = 42.0
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    files: tuple[MarkedFile, ...] = ()
    created_at: str = ""
    format_version: int = KEY_FORMAT_VERSION

    def __post_init__(self) -> None:
        carriers = np.array(self.carriers, dtype=np.float64)  # a private, read-only copy
        if carriers.ndim != 2:
            raise RadioactiveError(f"carriers must be a 2-D array [n, d], got shape {carriers.shape}")
        n, d = carriers.shape
        if n < 1:
            raise RadioactiveError("a key needs at least one carrier")
        if not np.isfinite(carriers).all():
            raise RadioactiveError("carriers contain NaN or infinite values")
        norms = np.linalg.norm(carriers, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1) > _UNIT_TOLERANCE)
        if bad.size:
            raise RadioactiveError(
                f"carrier {int(bad[0])} has length {norms[bad[0]]:.6g}, not 1: carriers must be unit vectors "
                "(normalise each row)"
            )
        carriers.setflags(write=False)
        object.__setattr__(self, "carriers", carriers)
        names = tuple(self.names)
        if len(names) != n:
            raise RadioactiveError(
                f"{n} carriers but {len(names)} names: give one class or set name per carrier"
            )
        if any(not isinstance(x, str) or not x for x in names) or len(set(names)) != n:
            raise RadioactiveError("carrier names must be non-empty and unique")
        object.__setattr__(self, "names", names)
        if not isinstance(self.network, NetworkIdentity):
            raise RadioactiveError("network must be a NetworkIdentity")
        if self.network.feature_dim != d:
            raise RadioactiveError(
                f"the carriers have d={d} but the marking network {self.network.describe()} has {self.network.feature_dim} "
                "features: they belong to different networks"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise RadioactiveError(f"seed must be a whole number, got {self.seed!r}")
        if (
            isinstance(self.epsilon, bool)
            or not isinstance(self.epsilon, (int, float))
            or not 0 < self.epsilon <= 1
        ):
            raise RadioactiveError(
                f"epsilon must be in (0, 1] (a fraction of full scale, e.g. 10/255), got {self.epsilon!r}"
            )
        if (
            isinstance(self.psnr_floor, bool)
            or not isinstance(self.psnr_floor, (int, float))
            or not 0 < self.psnr_floor < 100
        ):
            raise RadioactiveError(f"psnr_floor must be in (0, 100) dB, got {self.psnr_floor!r}")
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise RadioactiveError("augment must be an AugmentConfig or None")
        files = tuple(self.files)
        for f in files:
            if not isinstance(f, MarkedFile):
                raise RadioactiveError("files must be MarkedFile records")
            if f.name not in names:
                raise RadioactiveError(
                    f"marked file {f.source} is marked for {f.name!r}, which has no carrier in this key"
                )
        object.__setattr__(self, "files", files)
        if not isinstance(self.created_at, str):
            raise RadioactiveError("created_at must be an ISO 8601 string")
        if self.format_version != KEY_FORMAT_VERSION:
            raise RadioactiveError(_version_message(self.format_version))

    @classmethod
    def new(
        cls,
        carriers: ArrayLike,
        names: tuple[str, ...] | list[str],
        network: NetworkIdentity,
        *,
        seed: int,
        epsilon: float = 10 / 255,
        psnr_floor: float = 42.0,
        augment: AugmentConfig | None = None,
        files: tuple[MarkedFile, ...] = (),
    ) -> MarkingKey:
        """A key stamped with the current time (``augment=None`` here means the default :class:`AugmentConfig`)."""
        return cls(
            carriers=np.asarray(carriers, dtype=np.float64),
            names=tuple(names),
            network=network,
            seed=seed,
            epsilon=epsilon,
            psnr_floor=psnr_floor,
            augment=augment if augment is not None else AugmentConfig(),
            files=files,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def dim(self) -> int:
        return int(self.carriers.shape[1])

    def carrier(self, name: str) -> NDArray[np.float64]:
        """The carrier of class or set ``name``; a clear error when the key has none."""
        try:
            return self.carriers[self.names.index(name)]
        except ValueError:
            raise RadioactiveError(
                f"this key has no carrier for {name!r}; it knows {list(self.names)}"
            ) from None

    def with_files(self, files: tuple[MarkedFile, ...] | list[MarkedFile]) -> MarkingKey:
        """A copy listing ``files`` after the ones already recorded."""
        return replace(self, files=self.files + tuple(files))

    def check_network(self, identity: NetworkIdentity) -> None:
        """Raise unless ``identity`` is the network this key was made with (same architecture and weights)."""
        if (identity.architecture, identity.weights_sha256) != (
            self.network.architecture,
            self.network.weights_sha256,
        ):
            raise RadioactiveError(
                f"this key was made with marking network {self.network.describe()}, not {identity.describe()}: "
                "use the marking network saved with the key"
            )

    def metadata(self) -> dict[str, Any]:
        """Everything but the carriers, as JSON-able data (what :meth:`save` stores next to them)."""
        return {
            "format_version": self.format_version,
            "names": list(self.names),
            "network": asdict(self.network),
            "seed": self.seed,
            "epsilon": self.epsilon,
            "psnr_floor": self.psnr_floor,
            "augment": None if self.augment is None else self.augment.to_dict(),
            # JSON has no infinity: an unchanged image's PSNR (inf) is stored as null.
            "files": [{**asdict(f), "psnr": None if math.isinf(f.psnr) else f.psnr} for f in self.files],
            "created_at": self.created_at,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the key to ``path`` (a ``.npz``; written to a temporary file and renamed, so never half-written)."""
        path = Path(path)
        if path.is_dir():
            raise RadioactiveError(
                f"{path}: is a directory; give a file name for the key, e.g. {path / 'key.npz'}"
            )
        if not path.parent.is_dir():
            raise RadioactiveError(f"{path}: its folder {path.parent} does not exist; create it first")
        meta = json.dumps(self.metadata(), ensure_ascii=False, allow_nan=False)
        fd, tmp = tempfile.mkstemp(prefix=".key-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, carriers=self.carriers, metadata=np.array(meta))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MarkingKey:
        """Read and check a key written by :meth:`save`.

        Raises:
            RadioactiveError: a missing file, a file that is not a ``.npz`` key, a missing or malformed field,
                wrong shapes, carriers that are not unit vectors, or a format version this roomscan does not know.
        """
        path = Path(path)
        if not path.is_file():
            raise RadioactiveError(f"{path}: no such key file; check the path")
        what = f"{path}: not a marking key"
        try:
            with path.open("rb") as fh:
                magic = fh.read(6)
        except OSError as exc:
            raise RadioactiveError(
                f"{path}: cannot be read ({exc.strerror or exc}); check its permissions"
            ) from None
        if magic.startswith(b"\x93NUMPY"):
            raise RadioactiveError(f"{what} (it is a single .npy array; a key is a .npz written by roomscan)")
        if not magic.startswith(b"PK\x03\x04"):
            raise RadioactiveError(
                f"{what} (its bytes are not a .npz archive; give the key file roomscan wrote)"
            )
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise RadioactiveError(f"{what} (a .npz written by roomscan is expected): {exc}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise RadioactiveError(f"{what} (it is a single .npy array; a key is a .npz written by roomscan)")
        try:
            with data:
                missing = [k for k in ("carriers", "metadata") if k not in data.files]
                if missing:
                    raise RadioactiveError(f"{what}: it lacks {missing} (found {sorted(data.files)})")
                carriers = data["carriers"]
                meta_array = data["metadata"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # object arrays, damaged members
            raise RadioactiveError(f"{what}: {exc}") from None
        if carriers.dtype.kind != "f":
            raise RadioactiveError(f"{what}: carriers must be floating point, not {carriers.dtype}")
        if meta_array.ndim != 0 or meta_array.dtype.kind != "U":
            raise RadioactiveError(f"{what}: its metadata must be one JSON string")
        try:
            meta = json.loads(str(meta_array))
        except json.JSONDecodeError as exc:
            raise RadioactiveError(f"{what}: its metadata is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise RadioactiveError(f"{what}: its metadata must be a JSON object")
        return cls._from_parts(carriers, meta, str(path))

    @classmethod
    def _from_parts(cls, carriers: NDArray[Any], meta: dict[str, Any], label: str) -> MarkingKey:
        if "format_version" not in meta:
            raise RadioactiveError(f"{label}: the key has no format_version; it was not written by roomscan")
        if meta["format_version"] != KEY_FORMAT_VERSION:
            raise RadioactiveError(f"{label}: {_version_message(meta['format_version'])}")
        required = ("names", "network", "seed", "epsilon", "psnr_floor", "augment", "files", "created_at")
        missing = [k for k in required if k not in meta]
        if missing:
            raise RadioactiveError(
                f"{label}: the key's metadata lacks {missing}; the file is damaged or incomplete"
            )
        try:
            net = meta["network"]
            if not isinstance(net, dict):
                raise RadioactiveError("network must be a mapping")
            network = NetworkIdentity(**net)
            augment = None if meta["augment"] is None else AugmentConfig.from_dict(meta["augment"])
            if not isinstance(meta["files"], list) or not all(isinstance(f, dict) for f in meta["files"]):
                raise RadioactiveError("files must be a list of records")
            files = tuple(MarkedFile(**_with_inf_psnr(f)) for f in meta["files"])
            if not isinstance(meta["names"], list):
                raise RadioactiveError("names must be a list")
            return cls(
                carriers=carriers,
                names=tuple(meta["names"]),
                network=network,
                seed=meta["seed"],
                epsilon=meta["epsilon"],
                psnr_floor=meta["psnr_floor"],
                augment=augment,
                files=files,
                created_at=meta["created_at"],
                format_version=meta["format_version"],
            )
        except RadioactiveError as exc:
            raise RadioactiveError(f"{label}: {exc}") from None
        except TypeError as exc:  # a record with missing or unknown fields
            raise RadioactiveError(f"{label}: a record in the key is malformed ({exc})") from None


def _with_inf_psnr(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "psnr": math.inf} if "psnr" in record and record["psnr"] is None else record


def _version_message(version: Any) -> str:
    return (
        f"key format version {version!r} is not one this roomscan reads (it reads version {KEY_FORMAT_VERSION}); "
        "upgrade roomscan or use a key it wrote"
    )
