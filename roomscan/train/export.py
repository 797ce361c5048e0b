"""Export a fine-tuned DETR-family model directory to ONNX, checked against PyTorch, optionally int8-quantised.

The export is a model directory the ``onnx`` backend serves (``roomscan detect --model OUT``, the API, the worker):
``model.onnx`` (the model's forward, ``pixel_values [batch, 3, H, W] -> logits, pred_boxes``, batch and input
size dynamic when the graph allows), ``preprocessor_config.json`` (size fixed to the export size),
``config.json`` (labels), ``taxonomy.yaml`` and ``roomscan_onnx.json`` (source model key, input size, opset,
int8, and the parity figures measured at export). The graph comes from TorchScript tracing
(``torch.onnx.export(dynamo=False)``): the dynamo exporter fails on RT-DETR's deformable attention.

Every export is checked: ONNX Runtime and PyTorch run the same preprocessed photos and every query's raw logits
and box must lie within ``tolerance`` (max abs) of a query of the other output, or the export fails (query order
is free: DETR outputs are sets). The directory is
written next to its destination and renamed into place, so a crash never leaves a half-written export.

Example:
    >>> result = export_onnx("runs/rtdetr/best", config=ExportConfig(image_size=640, int8=True))  # doctest: +SKIP
    >>> result.path, result.metadata.checks["int8_vs_fp32"]["scores_max_abs"]  # doctest: +SKIP
    (PosixPath('runs/rtdetr/best-onnx-int8'), 0.02)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.backends.onnx import METADATA_FILE, ONNX_FILE, OnnxMetadata
from roomscan.errors import RoomscanError

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "export_onnx",
    "quantize_int8",
]

# Types whose processor post-processes with sigmoid scores and top-k (RTDetrImageProcessor), as the backend does.
SUPPORTED_MODEL_TYPES = ("rt_detr", "rt_detr_v2", "d_fine")


class ExportError(RoomscanError, ValueError):
    """A model directory cannot be exported, or the export does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        image_size: square input side (``None``: the image processor's size).
        opset: ONNX opset version.
        int8: quantise the weights to int8 with ONNX Runtime (dynamic, or static with ``calibration``).
        calibration: photos for static int8 quantisation (activation ranges); implies ``int8``.
        tolerance: largest allowed absolute difference between ONNX Runtime's and PyTorch's raw outputs, per
            query, matching each query to its nearest in the other output.
        dynamic_size: try to export with a dynamic input size (kept only if a second size checks out).
    """

    image_size: int | None = None
    opset: int = 17
    int8: bool = False
    calibration: tuple[Path, ...] = ()
    tolerance: float = 1e-3
    dynamic_size: bool = True

    def __post_init__(self) -> None:
        if self.image_size is not None and not 32 <= self.image_size <= 4096:
            raise ExportError(f"image_size must be between 32 and 4096 pixels, got {self.image_size}")
        if not 13 <= self.opset <= 21:
            raise ExportError(f"opset must be between 13 and 21, got {self.opset}")
        if self.calibration and not self.int8:
            object.__setattr__(self, "int8", True)


@dataclass(frozen=True)
class ExportResult:
    """A finished export: its directory and what ``roomscan_onnx.json`` records."""

    path: Path
    metadata: OnnxMetadata


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _check_source(model_dir: str | os.PathLike[str]) -> Path:
    from roomscan.backends import read_model_config

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ExportError(f"{path}: no such model directory")
    if (path / ONNX_FILE).exists():
        raise ExportError(f"{path}: already an ONNX export ({ONNX_FILE}); export the PyTorch model directory")
    model_type = read_model_config(path)["model_type"]
    if model_type == "owlv2":
        raise ExportError(
            f"{path}: cannot export model_type 'owlv2' here: an OWLv2 export bakes a taxonomy's prompts into the "
            "graph; use roomscan.train.export_owlv2.export_owlv2 (`roomscan export --model DIR --taxonomy T`)"
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ExportError(
            f"{path}: cannot export model_type {model_type!r} to ONNX; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (fine-tuned DETR-family detectors with a taxonomy.yaml)"
        )
    return path


def _sample_images(size: tuple[int, int], n: int = 3, seed: int = 0) -> list[Any]:
    """Photo-like images of several aspect ratios: smooth gradients plus blocks plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    shapes = [(width * 3 // 2, height), (width, height * 4 // 3), (width // 2 + 7, height // 2 + 3)]
    images = []
    for w, h in shapes[:n]:
        y, x = np.mgrid[0:h, 0:w]
        arr = np.stack([x / w * 220, y / h * 220, np.full_like(x, 100.0)], axis=-1)
        for _ in range(4):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            arr[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.integers(0, 255, 3)
        arr += rng.normal(0, 10, arr.shape)
        images.append(Image.fromarray(np.clip(arr, 0, 255).astype("uint8")))
    return images


class _Forward:
    """``model(pixel_values) -> (logits, pred_boxes)``: the graph the backend runs (built lazily: needs torch)."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class Forward(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                out = self.inner(pixel_values=pixel_values)
                return out.logits, out.pred_boxes

        # eval() on the wrapper too: torch.onnx.export restores the wrapper's mode, recursively, afterwards.
        return Forward(model).eval()


def _export_graph(module: Any, file: Path, size: tuple[int, int], opset: int, dynamic_size: bool) -> None:
    """Trace ``module(pixel_values) -> (logits, pred_boxes)`` (an eval-mode wrapper) into ``file``."""
    import warnings

    import torch

    axes: dict[str, dict[int, str]] = {
        "pixel_values": {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"},
        "logits": {0: "batch"},
        "pred_boxes": {0: "batch"},
    }
    example = torch.rand(2, 3, *size)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
            torch.onnx.export(
                module,
                (example,),
                str(file),
                dynamo=False,
                opset_version=opset,
                input_names=["pixel_values"],
                output_names=["logits", "pred_boxes"],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types (SymbolicValueError, RuntimeError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {first}") from exc
    finally:
        module.eval()


def _torch_outputs(model: Any, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.inference_mode():
        out = model(pixel_values=torch.from_numpy(pixel_values))
    return out.logits.float().numpy(), out.pred_boxes.float().numpy()


def _ort_outputs(file: Path, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # quantised graphs log one warning per unused initializer
    session = ort.InferenceSession(str(file), sess_options=options, providers=["CPUExecutionProvider"])
    logits, boxes = session.run(["logits", "pred_boxes"], {"pixel_values": pixel_values})
    return logits, boxes


def _diffs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    return {
        "logits_max_abs": float(np.abs(a[0] - b[0]).max()),
        "pred_boxes_max_abs": float(np.abs(a[1] - b[1]).max()),
        "scores_max_abs": float(np.abs(sigmoid(a[0]) - sigmoid(b[0])).max()),
        "set_max_abs": _set_distance(a, b),
    }


def _set_distance(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], top: int = 100, tie: float = 1e-4
) -> float:
    """Largest distance between the two outputs, compared as sets of queries.

    DETR outputs are sets: post-processing ranks queries by score, so their order carries no meaning. Where
    encoder scores tie (untrained or barely trained weights, where many tokens score the same), float rounding may
    pick *other* tied tokens for the query slots: same scores, different boxes, and both graphs are right. So:

    * every query's logits must lie within the distance of some query's logits of the other output, both ways;
    * the ``top`` queries by score (what a detector reports) whose score is not tied with another query's must
      also find their box, together with their logits, in the other output.
    """
    worst = 0.0
    for x_logits, y_logits, x_boxes, y_boxes in zip(a[0], b[0], a[1], b[1], strict=True):
        # [queries, classes] and [queries, 4] per image
        logit_dist = np.abs(x_logits[:, None, :] - y_logits[None, :, :]).max(-1)  # [queries, queries]
        worst = max(worst, float(logit_dist.min(1).max()), float(logit_dist.min(0).max()))
        full_dist = np.maximum(logit_dist, np.abs(x_boxes[:, None, :] - y_boxes[None, :, :]).max(-1))
        for dist, logits in ((full_dist, x_logits), (full_dist.T, y_logits)):
            score = logits.max(-1)  # [queries]
            gaps = np.abs(score[:, None] - score[None, :])  # [queries, queries]
            np.fill_diagonal(gaps, np.inf)
            untied = np.flatnonzero(gaps.min(1) > tie)
            chosen = untied[np.argsort(-score[untied])][:top]
            if len(chosen):
                worst = max(worst, float(dist[chosen].min(1).max()))
    return worst


def _resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch

    resized = torch.nn.functional.interpolate(torch.from_numpy(pixels), size=size, mode="bilinear")
    return np.ascontiguousarray(resized.numpy(), np.float32)


def _pixels(processor: Any, images: Sequence[Any]) -> np.ndarray:
    return np.ascontiguousarray(
        processor(images=list(images), return_tensors="np")["pixel_values"], np.float32
    )


def quantize_int8(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: np.ndarray | None = None
) -> str:
    """Quantise an ONNX detector to int8 with ONNX Runtime; returns the method (``dynamic`` or ``static``).

    Without ``calibration`` the matrix multiplications' weights are quantised ahead of time and their activations
    per run (dynamic: no data needed; convolutions stay fp32). With ``calibration`` (``pixel_values [n, 3, H, W]``) activation ranges come from those inputs
    (static QDQ, per-channel weights), which lets ONNX Runtime run int8 convolutions end to end.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its pre-processing advice
    if calibration is None:
        # MatMul/Gemm only: ONNX Runtime runs dynamically quantised convolutions (ConvInteger) 2-4x slower than
        # fp32 on CPU (measured, benchmarks/bench_onnx.py); static QDQ quantisation gives int8 convolutions.
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=False,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        return "dynamic"

    class Reader(CalibrationDataReader):
        def __init__(self, pixels: np.ndarray) -> None:
            self.items = iter([{"pixel_values": pixels[i : i + 1]} for i in range(len(pixels))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return "static"


def _quantize_in_place(file: Path, calibration: np.ndarray | None) -> str:
    """Replace the ONNX graph ``file`` by its int8 quantisation (:func:`quantize_int8`); returns the method.

    Raises:
        ExportError: ONNX Runtime cannot quantise the graph (``file`` is left as it was).
    """
    quantized = file.with_name("model.int8.onnx")
    try:
        method = quantize_int8(file, quantized, calibration)
    except Exception as exc:  # onnxruntime.quantization raises plain exceptions on unsupported graphs
        raise ExportError(f"int8 quantisation failed: {exc}") from exc
    quantized.replace(file)
    return method


def _calibration_pixels(processor: Any, files: Sequence[Path]) -> np.ndarray:
    from roomscan.detection.image import load_image

    images = []
    for file in files:
        images.append(load_image(file).image)  # ImageError names the file
    if not images:
        raise ExportError("no calibration photos: pass image files or a directory of images")
    return _pixels(processor, images)


def _destination(source: Path, out_dir: str | os.PathLike[str] | None, int8: bool) -> Path:
    out = (
        Path(out_dir).expanduser()
        if out_dir
        else source.with_name(source.name + ("-onnx-int8" if int8 else "-onnx"))
    )
    if out.resolve() == source.resolve():
        raise ExportError(f"{out}: the export directory must differ from the model directory")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / METADATA_FILE).is_file())):
        raise ExportError(f"{out}: exists and is not an earlier ONNX export; choose another --out")
    return out


def export_onnx(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    config: ExportConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``model_dir`` (an RT-DETR/RT-DETRv2/D-FINE directory with ``taxonomy.yaml``) to ONNX.

    Args:
        model_dir: the fine-tuned model directory (as :func:`roomscan.backends.detr.save_model_dir` writes).
        out_dir: the export directory (default: ``MODEL_DIR-onnx``, or ``-onnx-int8``); an earlier export there
            is replaced.
        config: export settings (:class:`ExportConfig`).
        progress: called with a short message at each step.

    Returns:
        The export directory and its metadata (parity figures under ``metadata.checks``).

    Raises:
        ExportError: not a supported model directory, the exporter failed, or ONNX Runtime's outputs differ from
            PyTorch's by more than ``config.tolerance``.
        ModelUnavailableError: the model directory is incomplete (no ``taxonomy.yaml``, unreadable weights...).
    """
    from roomscan.backends.detr import TAXONOMY_FILE, DetrDetector

    config = config or ExportConfig()
    source = _check_source(model_dir)
    out = _destination(source, out_dir, config.int8)
    _say(progress, f"loading {source}")
    detector = DetrDetector(source, device="cpu", image_size=config.image_size)
    model, processor = detector.model, detector.processor
    size = (processor.size.get("height"), processor.size.get("width"))
    if not all(size):
        raise ExportError(
            f"{source}: the image processor has no fixed size ({processor.size}); pass --image-size"
        )
    size = (int(size[0]), int(size[1]))
    # Check inputs: three photos of different aspect ratios, as one batch.
    pixels = _pixels(processor, _sample_images(size))
    expected = _torch_outputs(model, pixels)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        file = work / ONNX_FILE
        dynamic = config.dynamic_size
        _say(progress, f"exporting to ONNX (opset {config.opset}, {size[0]}x{size[1]})")
        _export_graph(_Forward.wrap(model), file, size, config.opset, dynamic)
        checks: dict[str, Any] = {"onnx_vs_torch": _diffs(_ort_outputs(file, pixels), expected)}
        if dynamic:
            # Another input size must check out too, else the graph baked shapes in: re-export at a fixed size.
            other_size = (size[0] + 32, size[1] + 32)
            other_pixels = _resized(pixels[:1], other_size)
            other_diff = _diffs(_ort_outputs(file, other_pixels), _torch_outputs(model, other_pixels))
            checks["onnx_vs_torch_other_size"] = {"size": list(other_size), **other_diff}
            if other_diff["set_max_abs"] > config.tolerance:
                _say(
                    progress, "the graph does not generalise to other input sizes: exporting at a fixed size"
                )
                dynamic = False
                _export_graph(_Forward.wrap(model), file, size, config.opset, dynamic)
                checks = {"onnx_vs_torch": _diffs(_ort_outputs(file, pixels), expected)}
        worst = checks["onnx_vs_torch"]["set_max_abs"]
        if worst > config.tolerance:
            raise ExportError(
                f"{source}: the ONNX graph differs from PyTorch by {worst:.2g} (tolerance {config.tolerance}); "
                f"try another --opset (now {config.opset})"
            )
        method = ""
        if config.int8:
            _say(progress, "quantising to int8" + (" (calibrating)" if config.calibration else ""))
            calib = _calibration_pixels(processor, config.calibration) if config.calibration else None
            fp32 = _ort_outputs(file, pixels)
            method = _quantize_in_place(file, calib)
            checks["int8_vs_fp32"] = _diffs(_ort_outputs(file, pixels), fp32)
        processor.save_pretrained(str(work))
        model.config.save_pretrained(str(work))
        shutil.copyfile(source / TAXONOMY_FILE, work / TAXONOMY_FILE)
        metadata = OnnxMetadata(
            source_model=detector.info.key,
            model_type=str(model.config.model_type),
            input_size=size,
            dynamic_size=dynamic,
            opset=config.opset,
            int8=config.int8,
            quantization=method,
            checks=checks,
        )
        (work / METADATA_FILE).write_text(json.dumps(metadata.to_json(), indent=2) + "\n", encoding="utf-8")
        _replace_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _say(progress, f"wrote {out}")
    return ExportResult(out, metadata)


def _replace_dir(work: Path, out: Path) -> None:
    """Move the finished ``work`` directory to ``out``, replacing an earlier export there."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out)
