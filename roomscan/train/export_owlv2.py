"""Export OWLv2 (zero-shot) to ONNX for one taxonomy: the vision tower and heads, the prompts' embeddings baked in.

The graph is what :meth:`~roomscan.backends.owlv2.Owlv2Detector.raw_outputs` computes, plus the reduction of
prompt logits to amenity logits (each amenity's best prompt), so serving is one graph call and the ``onnx``
backend's shared post-processing: ``pixel_values [batch, 3, S, S] -> logits [batch, patches, amenities],
pred_boxes [batch, patches, 4]`` (cx, cy, w, h relative to the padded square). The text tower is not exported:
the taxonomy's text embeddings are constants of the graph, so the export serves that taxonomy only (its
fingerprint is in ``roomscan_onnx.json``; :class:`~roomscan.backends.onnx.OnnxDetector` refuses another).

The directory holds ``model.onnx``, ``preprocessor_config.json`` (size fixed to ``S``), the source
``config.json``, ``taxonomy.yaml`` and ``roomscan_onnx.json``. Every export is checked: ONNX Runtime and PyTorch
run the same pre-processed photos and every patch's amenity logits and box must agree within ``tolerance`` (patch
order is fixed, so patches are compared one to one). It is written next to its destination and renamed into place.

Example:
    >>> result = export_owlv2("owlv2", "owlv2-640-onnx", ExportConfig(image_size=640, int8=True),
    ...                       taxonomy="amenities.yaml")  # doctest: +SKIP
    >>> result.metadata.checks["onnx_vs_torch"]["scores_max_abs"]  # doctest: +SKIP
    3.1e-07
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.backends import ResolvedModel, read_model_config, resolve_model
from roomscan.backends.onnx import METADATA_FILE, ONNX_FILE, OWLV2_MODEL_TYPE, TAXONOMY_FILE, OnnxMetadata
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Taxonomy
from roomscan.train.export import (
    ExportConfig,
    ExportError,
    ExportResult,
    _export_graph,
    _ort_outputs,
    _quantize_in_place,
    _replace_dir,
    _sample_images,
    _say,
)

__all__ = ["amenity_spans", "export_owlv2", "is_owlv2"]


def is_owlv2(path: str | os.PathLike[str]) -> bool:
    """Whether the model directory ``path`` holds an OWLv2 checkpoint (its ``config.json``'s ``model_type``)."""
    return bool(read_model_config(path)["model_type"] == OWLV2_MODEL_TYPE)


def amenity_spans(taxonomy: Taxonomy) -> list[tuple[int, int]]:
    """``[start, end)`` of each amenity's prompts among the taxonomy's prompts, in the order
    :class:`~roomscan.backends.owlv2.Owlv2Detector` embeds them (amenity by amenity)."""
    spans, start = [], 0
    for amenity in taxonomy:
        spans.append((start, start + len(amenity.prompts)))
        start += len(amenity.prompts)
    return spans


def _graph(detector: Any) -> Any:
    """``pixel_values -> (amenity logits, boxes)`` as a torch module around an ``Owlv2Detector``."""
    import torch

    spans = amenity_spans(detector.taxonomy)

    class Owlv2Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = detector.model  # registered, so eval() and the exporter see its parameters

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, boxes = detector.raw_outputs(pixel_values)  # [b, patches, prompts], [b, patches, 4]
            amenities = torch.stack([logits[..., a:b].amax(dim=-1) for a, b in spans], dim=-1)  # [b, patches, C]
            return amenities, boxes

    return Owlv2Graph().eval()


def _torch_outputs(graph: Any, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.inference_mode():
        logits, boxes = graph(torch.from_numpy(pixel_values))
    return logits.float().numpy(), boxes.float().numpy()


def _diffs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Patch by patch (OWLv2's patches are in a fixed order): largest and mean differences of logits, boxes and
    scores (sigmoids of the logits, what thresholds compare)."""
    scores = np.abs(1.0 / (1.0 + np.exp(-a[0])) - 1.0 / (1.0 + np.exp(-b[0])))
    return {
        "logits_max_abs": float(np.abs(a[0] - b[0]).max()),
        "pred_boxes_max_abs": float(np.abs(a[1] - b[1]).max()),
        "scores_max_abs": float(scores.max()),
        "scores_mean_abs": float(scores.mean()),
    }


def _destination(resolved: ResolvedModel, out_dir: str | os.PathLike[str] | None, int8: bool) -> Path:
    suffix = "-onnx-int8" if int8 else "-onnx"
    if out_dir:
        out = Path(out_dir).expanduser()
    elif resolved.name == str(resolved.path):  # a local directory: beside it
        out = resolved.path.with_name(resolved.path.name + suffix)
    else:  # a hub model: not inside the Hugging Face cache, but here
        out = Path(resolved.name.rsplit("/", 1)[-1] + suffix)
    if out.resolve() == resolved.path.resolve():
        raise ExportError(f"{out}: the export directory must differ from the model directory")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / METADATA_FILE).is_file())):
        raise ExportError(f"{out}: exists and is not an earlier ONNX export; choose another --out")
    return out


def _photos(files: Sequence[Path]) -> list[Any]:
    from roomscan.detection.image import load_image

    images = [load_image(file).image for file in files]  # ImageError names the file
    if not images:
        raise ExportError("no calibration photos: pass image files or a directory of images")
    return images


def export_owlv2(
    model: str | os.PathLike[str] | ResolvedModel,
    out_dir: str | os.PathLike[str] | None = None,
    config: ExportConfig | None = None,
    *,
    taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export an OWLv2 checkpoint, for ``taxonomy``, to an ONNX model directory the ``onnx`` backend serves.

    Args:
        model: a known name (``owlv2``), a hub id or a local OWLv2 directory.
        out_dir: the export directory (default: ``MODEL_DIR-onnx`` / ``-onnx-int8`` beside a local directory,
            ``./<hub name>-onnx`` for a hub model); an earlier export there is replaced.
        config: export settings; ``image_size`` is the square side (default: the checkpoint's, 960 for owlv2),
            a multiple of the patch size. The graph takes that size only (and any batch size).
        taxonomy: the amenities (default: the built-in taxonomy); its prompts are embedded once and baked in.
        progress: called with a short message at each step.

    Returns:
        The export directory and its metadata (``checks["onnx_vs_torch"]``, and ``["int8_vs_torch"]`` and
        ``["int8_vs_fp32"]`` with ``int8``: max and mean score differences).

    Raises:
        ExportError: not an OWLv2 checkpoint, a bad image size, an ONNX export, the exporter failed, or ONNX
            Runtime's fp32 outputs differ from PyTorch's by more than ``config.tolerance``.
        ModelUnavailableError: the weights cannot be found or loaded.
        TaxonomyError: an unreadable taxonomy.
    """
    from roomscan.backends.owlv2 import Owlv2Detector

    config = config or ExportConfig()
    resolved = resolve_model(model)
    if (resolved.path / ONNX_FILE).exists():
        raise ExportError(f"{resolved.name}: already an ONNX export ({ONNX_FILE}); export the PyTorch model")
    if not is_owlv2(resolved.path):
        raise ExportError(f"{resolved.name}: not an OWLv2 checkpoint (config.json's model_type is not owlv2)")
    out = _destination(resolved, out_dir, config.int8)
    _say(progress, f"loading {resolved.name}")
    try:
        detector = Owlv2Detector(resolved, taxonomy=taxonomy, device="cpu", image_size=config.image_size)
    except TaxonomyError:
        raise
    except ValueError as exc:  # an image size off the patch grid
        raise ExportError(f"{resolved.name}: {exc}") from exc
    side = detector.image_size
    graph = _graph(detector)
    # Check inputs: three photos of different aspect ratios, as one batch (so padding is checked too).
    pixels = detector.preprocess(_sample_images((side, side))).cpu().numpy()
    expected = _torch_outputs(graph, pixels)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:  # a file where a folder should be, a read-only folder
        raise ExportError(f"{out}: cannot write the export there ({exc.strerror}: {exc.filename}); choose "
                          "another --out") from exc
    try:
        file = work / ONNX_FILE
        _say(progress, f"exporting OWLv2 to ONNX (opset {config.opset}, {side}x{side}, {len(detector.taxonomy)} "
             "amenities)")
        _export_graph(graph, file, (side, side), config.opset, dynamic_size=False)
        fp32 = _ort_outputs(file, pixels)
        checks: dict[str, Any] = {"onnx_vs_torch": _diffs(fp32, expected)}
        worst = max(checks["onnx_vs_torch"]["logits_max_abs"], checks["onnx_vs_torch"]["pred_boxes_max_abs"])
        if worst > config.tolerance:
            raise ExportError(
                f"{resolved.name}: the ONNX graph differs from PyTorch by {worst:.2g} (tolerance "
                f"{config.tolerance}); try another --opset (now {config.opset})"
            )
        method = ""
        if config.int8:
            _say(progress, "quantising to int8" + (" (calibrating)" if config.calibration else ""))
            calib = detector.preprocess(_photos(config.calibration)).cpu().numpy() if config.calibration else None
            method = _quantize_in_place(file, calib)
            int8 = _ort_outputs(file, pixels)
            checks["int8_vs_torch"] = _diffs(int8, expected)
            checks["int8_vs_fp32"] = _diffs(int8, fp32)
        _save_processor(resolved.path, work, side)
        detector.model.config.save_pretrained(str(work))
        detector.taxonomy.save(work / TAXONOMY_FILE)
        metadata = OnnxMetadata(
            source_model=detector.info.key,
            model_type=OWLV2_MODEL_TYPE,
            input_size=(side, side),
            dynamic_size=False,
            opset=config.opset,
            int8=config.int8,
            quantization=method,
            checks=checks,
            taxonomy=detector.taxonomy.fingerprint(),
            nms_threshold=detector.nms_threshold,
        )
        (work / METADATA_FILE).write_text(json.dumps(metadata.to_json(), indent=2) + "\n", encoding="utf-8")
        _replace_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _say(progress, f"wrote {out}")
    return ExportResult(out, metadata)


def _save_processor(source: Path, work: Path, side: int) -> None:
    """The checkpoint's image processor settings (mean, std: ``preprocessor_config.json``, or the
    ``image_processor`` of a combined ``processor_config.json``), its size set to the export's."""
    from roomscan.backends.onnx import PROCESSOR_FILE

    try:
        if (source / PROCESSOR_FILE).is_file():
            raw = json.loads((source / PROCESSOR_FILE).read_text(encoding="utf-8"))
        else:
            raw = json.loads((source / "processor_config.json").read_text(encoding="utf-8"))["image_processor"]
        raw = {**raw, "size": {"height": side, "width": side}}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExportError(f"{source}: cannot read its image processor settings ({exc!r})") from exc
    (work / PROCESSOR_FILE).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
