"""Marking files: read photos, mark them, write marked copies in the original format and size, check them again.

JPEGs are re-encoded with the original's own quantisation tables and chroma subsampling (so the quality is the
original's, not a guess), PNGs losslessly; EXIF (orientation included) and ICC profiles are kept, and a PNG's alpha
channel is left untouched. Marking happens on the upright image a viewer sees; the marked pixels are turned back
to the file's stored orientation before writing. Each written file is decoded again and its PSNR and L-infinity
distance to the original measured; when JPEG's own rounding breaks a bound, the mark is scaled down and the file
encoded again, and a file that still cannot meet the bounds is not written but reported in
:attr:`MarkFilesResult.skipped`.

Originals are never overwritten unless ``overwrite_originals=True``: writing into a source folder, or onto a
source file, is refused otherwise.

Example:
    >>> result = mark_files(["photos/k1.jpg", "photos/b1.png"], "marked/", ["kitchen", "bedroom"], key, net)  # doctest: +SKIP
    >>> key = key.with_files(result.files); key.save("key.npz")                                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, ImageOps, JpegImagePlugin

from roomscan.detection.image import load_image
from roomscan.errors import ImageError
from roomscan.radioactive.config import AugmentConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkedFile, MarkingKey
from roomscan.radioactive.mark import linf_distance, mark_images, psnr, quantise, resolve_carriers
from roomscan.radioactive.network import FeatureNetwork

__all__ = ["MarkFilesResult", "SkippedFile", "estimate_jpeg_quality", "mark_files"]

WRITABLE_FORMATS = ("JPEG", "PNG")
_CHUNK = 32  # files held in memory at once
_JPEG_PASSES = 4  # encode, measure the codec's error, pre-compensate it; per scale of the mark
# EXIF orientation -> the transpose that undoes ImageOps.exif_transpose (self-inverse except 6 and 8).
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
# The IJG standard luminance table (quality 50), the reference quality estimates are measured against.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)  # fmt: skip


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not written, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class MarkFilesResult:
    """What :func:`mark_files` wrote (records for the key) and what it could not."""

    files: tuple[MarkedFile, ...]
    skipped: tuple[SkippedFile, ...]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([f.psnr for f in self.files])) if self.files else math.nan


@dataclass
class _Source:
    path: Path
    output: Path
    name: str
    sha256: str
    format: str
    data: bytes = b""  # read again per chunk, so a large folder is never all in memory

    def read(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RadioactiveError(f"{self.path}: cannot be read any more ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise RadioactiveError(f"{self.path}: changed while marking; run again once it is stable")
        self.data = data
        return data


def estimate_jpeg_quality(quantization: Mapping[int, Sequence[int]]) -> int:
    """The IJG quality (1-100) whose luminance table is closest to a JPEG's (``PIL image.quantization``)."""
    if not quantization or 0 not in quantization or len(quantization[0]) != 64:
        raise RadioactiveError(
            "a JPEG's quantisation tables are missing or not 8x8; cannot estimate its quality"
        )
    table = np.asarray(quantization[0], dtype=np.float64)
    # Pillow gives tables in zig-zag or natural order depending on version; the mean ratio does not care.
    scale = float(np.mean(np.sort(table) / np.sort(_IJG_LUMA))) * 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(min(100, max(1, round(quality))))


def mark_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    classes: Sequence[int | str],
    carriers: MarkingKey | ArrayLike,
    network: FeatureNetwork,
    *,
    root: str | os.PathLike[str] | None = None,
    overwrite_originals: bool = False,
    epsilon: float = 10 / 255,
    psnr_floor: float = 42.0,
    steps: int = 60,
    lr: float = 0.002,
    augment: AugmentConfig | bool | None = True,
    batch_size: int = 8,
    seed: int = 0,
    retries: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
) -> MarkFilesResult:
    """Mark photo files and write the marked copies under ``out_dir``, keeping each file's format, size and metadata.

    Every file is read and checked before anything is marked, so a bad file stops the run with nothing written.

    Args:
        paths: the originals (JPEG, or PNG in RGB or RGBA).
        out_dir: where marked copies go, at each file's path relative to ``root``.
        classes: per file, the carrier (row index or a key's class name) to mark it with. Each record's ``name``
            is the key's name of that carrier, or the row index as a string for plain carriers.
        carriers, network: as :func:`~roomscan.radioactive.mark.mark_images`.
        root: the folder paths are taken relative to (default: the deepest folder holding them all).
        overwrite_originals: allow ``out_dir`` to be the originals' folder, replacing them in place.
        epsilon, psnr_floor, steps, lr, augment, batch_size, seed: as :func:`mark_images`; the bounds are
            checked on each file as written.
        retries: how many times a JPEG's mark is scaled down (x0.8) when re-encoding broke a bound.
        on_progress: called with ``(files done, total)``.

    Returns:
        the written files' records, and the files skipped: those whose JPEG re-encoding alone breaks the bounds
        and those whose PSNR floor leaves no room for any change.

    Raises:
        RadioactiveError: an unreadable file or one that cannot be written back (format, mode), an output that
            would overwrite an original without ``overwrite_originals``, two files with one output path, or the
            errors of :func:`mark_images`.
    """
    if len(paths) != len(classes):
        raise RadioactiveError(f"{len(paths)} files but {len(classes)} classes: give one class per file")
    if not paths:
        raise RadioactiveError("no files to mark")
    _, rows = resolve_carriers(
        carriers, classes, network
    )  # a wrong key or class fails before any file is read
    names = [carriers.names[r] if isinstance(carriers, MarkingKey) else str(r) for r in rows]
    sources = _plan(paths, out_dir, names, root=root, overwrite_originals=overwrite_originals)
    levels = math.floor(epsilon * 255 + 1e-9)
    written: list[MarkedFile] = []
    skipped: list[SkippedFile] = []
    for start in range(0, len(sources), _CHUNK):
        chunk = sources[start : start + _CHUNK]
        decoded = [_decode(s.read()) for s in chunk]  # (upright image, exif orientation)
        upright_rgb = [im.convert("RGB") for im, _ in decoded]
        marked = mark_images(
            upright_rgb, [classes[start + i] for i in range(len(chunk))], carriers, network,
            epsilon=epsilon, psnr_floor=psnr_floor, steps=steps, lr=lr, augment=augment,
            batch_size=batch_size, seed=seed + start,
        )  # fmt: skip
        for src, (upright, orientation), rgb, m in zip(chunk, decoded, upright_rgb, marked, strict=True):
            outcome = _write(src, upright, orientation, np.asarray(rgb), np.asarray(m.image),
                             levels=levels, epsilon=epsilon, psnr_floor=psnr_floor, retries=retries)  # fmt: skip
            if isinstance(outcome, MarkedFile):
                written.append(outcome)
            else:
                skipped.append(outcome)
            src.data = b""
        if on_progress is not None:
            on_progress(min(start + _CHUNK, len(sources)), len(sources))
    return MarkFilesResult(tuple(written), tuple(skipped))


def _plan(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    names: Sequence[str],
    *,
    root: str | os.PathLike[str] | None,
    overwrite_originals: bool,
) -> list[_Source]:
    """Read and check every file, decide every output path; raise before anything is written."""
    files = [Path(p) for p in paths]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RadioactiveError(f"{out}: exists and is not a folder; give a folder for the marked copies")
    base = (
        Path(root) if root is not None else Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
    )
    problems: list[str] = []
    sources: list[_Source] = []
    seen: dict[Path, Path] = {}
    for f, name in zip(files, names, strict=True):
        try:
            loaded = load_image(f)
        except ImageError as exc:
            problems.append(str(exc))
            continue
        try:
            rel = f.resolve().relative_to(base.resolve())
        except ValueError:
            raise RadioactiveError(
                f"{f}: is not inside root {base}; pass a root that holds every file"
            ) from None
        target = out / rel
        if target.resolve() in seen:
            raise RadioactiveError(f"{f} and {seen[target.resolve()]} would both be written to {target}")
        seen[target.resolve()] = f
        problem = _unwritable(loaded.data, loaded.format)
        if problem:
            problems.append(f"{f}: {problem}")
            continue
        sources.append(_Source(f, target, name, loaded.sha256, loaded.format))
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise RadioactiveError(
            f"{len(problems)} file(s) cannot be marked; nothing was written:\n  {shown}{more}"
        )
    if not overwrite_originals:
        originals = {s.path.resolve() for s in sources}
        folders = {s.path.resolve().parent for s in sources}
        for s in sources:
            if s.output.resolve() in originals or s.output.resolve().parent in folders:
                raise RadioactiveError(
                    f"refusing to write {s.output}: it is in the originals' folder ({s.path.parent}); choose another "
                    "output folder, or ask to overwrite the originals"
                )
    return sources


def _unwritable(data: bytes, fmt: str) -> str | None:
    if fmt not in WRITABLE_FORMATS:
        return f"{fmt} files cannot be written back unchanged in format; marking handles JPEG and PNG"
    with Image.open(io.BytesIO(data)) as im:
        if fmt == "JPEG" and im.mode != "RGB":
            return f"a {im.mode} JPEG (only colour RGB JPEGs are marked)"
        if fmt == "PNG" and im.mode not in ("RGB", "RGBA"):
            return (
                f"a {im.mode} PNG (only RGB and RGBA PNGs are marked; greyscale and palette images are not)"
            )
        if getattr(im, "n_frames", 1) > 1:
            return "an animated image (only still images are marked)"
    return None


def _decode(data: bytes) -> tuple[Image.Image, int]:
    """The upright image (its own mode) and the EXIF orientation that was applied (1 when none)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    orientation = 1
    try:
        orientation = int(im.getexif().get(0x0112, 1))
        upright = ImageOps.exif_transpose(im) if orientation in _UNDO_ORIENTATION else im
    except Exception:  # noqa: BLE001 - a broken EXIF block: use the pixels as stored, like load_image
        orientation, upright = 1, im
    return upright, orientation


def _encode(src: _Source, stored: Image.Image) -> bytes:
    with Image.open(io.BytesIO(src.data)) as original:
        info = original.info
        params: dict[str, Any] = {}
        if info.get("exif"):
            params["exif"] = info["exif"]
        if info.get("icc_profile"):
            params["icc_profile"] = info["icc_profile"]
        if src.format == "JPEG":
            params["qtables"] = _qtables(original)
            sampling = JpegImagePlugin.get_sampling(original)
            if sampling >= 0:
                params["subsampling"] = sampling
            params["progressive"] = bool(info.get("progressive") or info.get("progression"))
        buf = io.BytesIO()
        stored.save(buf, format=src.format, **params)
    return buf.getvalue()


def _write(
    src: _Source,
    upright: Image.Image,
    orientation: int,
    original_rgb: NDArray[np.uint8],
    marked_rgb: NDArray[np.uint8],
    *,
    levels: int,
    epsilon: float,
    psnr_floor: float,
    retries: int,
) -> MarkedFile | SkippedFile:
    if np.array_equal(marked_rgb, original_rgb):
        return SkippedFile(
            str(src.path),
            f"no 8-bit change fits a PSNR floor of {psnr_floor:g} dB, so the file would carry no mark; "
            "lower the floor (42 dB is invisible)",
        )
    delta = marked_rgb.astype(np.float64) - original_rgb  # [H, W, 3] in 8-bit levels
    alpha = upright.getchannel("A") if upright.mode == "RGBA" else None
    scale, measured = 1.0, (0.0, 0.0)
    for _ in range(retries + 1):
        target = quantise(original_rgb, delta * scale, levels)
        pixels = target
        # JPEG rounds again when encoding; feeding its error back (a few passes) pulls the decoded pixels towards
        # the target, which often brings a file within the bounds without weakening the mark.
        for _pass in range(_JPEG_PASSES if src.format == "JPEG" else 1):
            data, again = _encode_decode(src, pixels, alpha, orientation)
            measured = (psnr(original_rgb, again), linf_distance(original_rgb, again))
            if measured[0] >= psnr_floor and measured[1] <= epsilon + 1e-12:
                _atomic_write(src.output, data)
                return MarkedFile(
                    source=str(src.path), output=str(src.output), name=src.name, psnr=measured[0], linf=measured[1],
                    sha256_original=src.sha256, sha256_marked=hashlib.sha256(data).hexdigest(),
                )  # fmt: skip
            error = again.astype(np.int16) - target
            pixels = np.clip(pixels.astype(np.int16) - error, 0, 255).astype(np.uint8)
        scale *= 0.8
    quality = ""
    if src.format == "JPEG":
        with Image.open(io.BytesIO(src.data)) as original:
            quality = f" at its quality (~{estimate_jpeg_quality(_qtables(original))})"
    return SkippedFile(
        str(src.path),
        f"re-encoding the JPEG{quality} alone changes it too much (PSNR {measured[0]:.1f} dB, "
        f"L-inf {measured[1] * 255:.0f}/255 against a floor of {psnr_floor:g} dB and {epsilon * 255:.0f}/255); "
        "lower the PSNR floor or raise epsilon to mark it",
    )


def _qtables(image: Image.Image) -> dict[int, list[int]]:
    return dict(image.quantization)  # type: ignore[attr-defined]  # JpegImageFile only


def _encode_decode(
    src: _Source, pixels: NDArray[np.uint8], alpha: Image.Image | None, orientation: int
) -> tuple[bytes, NDArray[np.uint8]]:
    """Encode upright RGB ``pixels`` as the original file was stored; return the bytes and their upright decode."""
    candidate = Image.fromarray(pixels, "RGB")
    if alpha is not None:
        candidate.putalpha(alpha)
    stored = (
        candidate.transpose(_UNDO_ORIENTATION[orientation]) if orientation in _UNDO_ORIENTATION else candidate
    )
    data = _encode(src, stored)
    return data, np.asarray(_decode(data)[0].convert("RGB"))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".marking-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
