"""DETR-family detectors exported to ONNX, served with ONNX Runtime: no torch or transformers at inference.

An ONNX model directory is what :func:`roomscan.train.export.export_onnx` writes: ``model.onnx`` (inputs
``pixel_values [batch, 3, height, width]``, outputs ``logits [batch, queries, classes]`` and
``pred_boxes [batch, queries, 4]`` as normalised cx, cy, w, h), the image processor's
``preprocessor_config.json``, the source ``config.json`` (for ``id2label``), ``taxonomy.yaml`` and
``roomscan_onnx.json`` (source model and its ``model_type``, input size, opset, int8). Pre-processing is a numpy/PIL
twin of the RT-DETR image processor's (resize, rescale, optional normalise); scores follow the source model's
family as in :class:`~roomscan.backends.detr.DetrDetector` (``model_type`` in the metadata picks softmax or sigmoid,
and the base class picks boxes the same way), so a detector here reports what ``DetrDetector`` reports on the
source checkpoint.

OWLv2 exports (:func:`roomscan.train.export_owlv2.export_owlv2`, ``model_type`` ``owlv2`` in the metadata) hold the
vision tower and the class and box heads with one taxonomy's text embeddings baked in: ``logits`` are per-amenity
(each amenity's best prompt) for every patch, and boxes are relative to the padded square. They pre-process as
:class:`~roomscan.backends.owlv2.Owlv2Detector` does (:class:`SquarePreprocessing`), score with sigmoids, one box
per patch, and apply the source detector's NMS, so they report what ``Owlv2Detector`` reports; they refuse any
taxonomy but the one they were exported with.

Example:
    >>> detector = get_detector("runs/rtdetr-v2/best-onnx")  # doctest: +SKIP
    >>> detector.info.backend, detector.providers  # doctest: +SKIP
    ('onnx', ['CPUExecutionProvider'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from roomscan.backends._base import Detector, ModelInfo, RawOutput
from roomscan.backends._common import (
    DEFAULT_MAX_DETECTIONS,
    TAXONOMY_FILE,
    class_thresholds,
    load_label_taxonomy,
    probability_kind_of,
)
from roomscan.backends._hub import ResolvedModel, read_model_config, resolve_model
from roomscan.errors import ModelUnavailableError, TaxonomyError
from roomscan.taxonomy import Taxonomy, load_taxonomy

ONNX_FILE = "model.onnx"
METADATA_FILE = "roomscan_onnx.json"
PROCESSOR_FILE = "preprocessor_config.json"
METADATA_FORMAT = 1
OWLV2_MODEL_TYPE = "owlv2"


class _Unset:
    """The default of an argument whose default depends on the export (``nms_threshold``)."""

    def __repr__(self) -> str:
        return "<the export's default>"


UNSET = _Unset()

__all__ = [
    "METADATA_FILE",
    "ONNX_FILE",
    "OWLV2_MODEL_TYPE",
    "OnnxDetector",
    "OnnxMetadata",
    "Preprocessing",
    "SquarePreprocessing",
    "read_metadata",
]


@dataclass(frozen=True)
class OnnxMetadata:
    """What ``roomscan_onnx.json`` records about an export.

    Attributes:
        source_model: the key of the model it was exported from (backend, name, weights hash, taxonomy).
        model_type: the transformers ``model_type`` (``rt_detr_v2``, ``d_fine``...).
        input_size: ``(height, width)`` the model was exported and checked at; the default input size.
        dynamic_size: whether the graph accepts other input sizes (checked at export on a second size).
        opset: ONNX opset version.
        int8: whether the weights are int8-quantised.
        quantization: ``dynamic``, ``static`` or ``""``.
        checks: export-time measurements (max abs differences vs PyTorch, int8 vs fp32...).
        taxonomy: fingerprint of the taxonomy baked into the graph (OWLv2 exports: its text embeddings), or
            ``""`` when the labels come from ``config.json`` (DETR family).
        nms_threshold: the source detector's NMS IoU, the export's default (``None``: no NMS).
    """

    source_model: str
    model_type: str
    input_size: tuple[int, int]
    dynamic_size: bool
    opset: int
    int8: bool = False
    quantization: str = ""
    checks: dict[str, Any] | None = None
    taxonomy: str = ""
    nms_threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": METADATA_FORMAT,
            "source_model": self.source_model,
            "model_type": self.model_type,
            "input_size": list(self.input_size),
            "dynamic_size": self.dynamic_size,
            "opset": self.opset,
            "int8": self.int8,
            "quantization": self.quantization,
            "checks": self.checks or {},
            "taxonomy": self.taxonomy,
            "nms_threshold": self.nms_threshold,
        }


def read_metadata(path: str | os.PathLike[str]) -> OnnxMetadata:
    """Read an export's ``roomscan_onnx.json``.

    Raises:
        ModelUnavailableError: the file is missing, not JSON, or lacks a field.
    """
    file = Path(path) / METADATA_FILE
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        if raw.get("format") != METADATA_FORMAT:
            raise ValueError(f"unknown format {raw.get('format')!r} (expected {METADATA_FORMAT})")
        height, width = (int(v) for v in raw["input_size"])
        return OnnxMetadata(
            source_model=str(raw["source_model"]),
            model_type=str(raw["model_type"]),
            input_size=(height, width),
            dynamic_size=bool(raw["dynamic_size"]),
            opset=int(raw["opset"]),
            int8=bool(raw.get("int8", False)),
            quantization=str(raw.get("quantization", "")),
            checks=dict(raw.get("checks") or {}),
            taxonomy=str(raw.get("taxonomy") or ""),
            nms_threshold=None if raw.get("nms_threshold") is None else float(raw["nms_threshold"]),
        )
    except FileNotFoundError as exc:
        raise ModelUnavailableError(
            f"{path}: no {METADATA_FILE}; write ONNX model directories with `roomscan export MODEL_DIR --onnx`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ModelUnavailableError(f"{file}: not a readable JSON file ({exc})") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailableError(f"{file}: malformed export metadata ({exc!r})") from exc


@dataclass(frozen=True)
class Preprocessing:
    """The RT-DETR image processor's steps on one image: resize to ``size``, rescale, optionally normalise.

    Matches ``RTDetrImageProcessor`` (PIL backend) to float32 rounding: PIL resize of the uint8 image, then
    ``x * rescale_factor`` in float64, cast to float32.
    """

    size: tuple[int, int]  # (height, width)
    resample: int = 2  # PIL.Image.BILINEAR
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = False
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_file(cls, file: Path, size: tuple[int, int] | None = None) -> Preprocessing:
        """Read ``preprocessor_config.json``; ``size`` (height, width) overrides its size.

        Raises:
            ModelUnavailableError: unreadable, or a resize mode other than a fixed height and width.
        """
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
            if raw.get("do_pad") and raw.get("pad_size"):
                raise ValueError("padding to pad_size is not supported")
            if size is None:
                size = (int(raw["size"]["height"]), int(raw["size"]["width"]))
            return cls(
                size=size,
                resample=int(raw.get("resample", 2)),
                do_resize=bool(raw.get("do_resize", True)),
                do_rescale=bool(raw.get("do_rescale", True)),
                rescale_factor=float(raw.get("rescale_factor", 1 / 255)),
                do_normalize=bool(raw.get("do_normalize", False)),
                image_mean=tuple(float(v) for v in raw.get("image_mean", cls.image_mean)),  # type: ignore[arg-type]
                image_std=tuple(float(v) for v in raw.get("image_std", cls.image_std)),  # type: ignore[arg-type]
            )
        except FileNotFoundError as exc:
            raise ModelUnavailableError(
                f"{file.parent}: no {PROCESSOR_FILE} in the ONNX model directory"
            ) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelUnavailableError(f"{file}: not a readable JSON file ({exc})") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelUnavailableError(
                f"{file}: unsupported image processor settings ({exc!r}); the ONNX backend needs a fixed "
                "size {'height': H, 'width': W}"
            ) from exc

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> ``pixel_values`` float32 ``[batch, 3, height, width]``."""
        height, width = self.size
        out = np.empty((len(images), 3, height, width), dtype=np.float32)
        for i, image in enumerate(images):
            if self.do_resize and image.size != (width, height):
                image = image.resize((width, height), resample=self.resample)  # type: ignore[arg-type]
            arr = np.asarray(image, dtype=np.uint8)
            if arr.shape != (height, width, 3):
                raise ValueError(f"image #{i} is {arr.shape} after resizing, expected {(height, width, 3)}")
            pixels = (
                arr.astype(np.float64) * self.rescale_factor if self.do_rescale else arr.astype(np.float64)
            )
            pixels = pixels.astype(np.float32)
            if self.do_normalize:
                mean = np.asarray(self.image_mean, dtype=np.float32)
                std = np.asarray(self.image_std, dtype=np.float32)
                pixels = (pixels - mean) / std
            out[i] = pixels.transpose(2, 0, 1)  # HWC -> CHW
        return out

    def box_scale(self, image: Image.Image) -> np.ndarray:
        """Multiply normalised ``x1, y1, x2, y2`` by this to get the image's pixels: the image was stretched."""
        return np.array([image.width, image.height, image.width, image.height], dtype=np.float32)


@dataclass(frozen=True)
class SquarePreprocessing:
    """OWLv2's pre-processing, in numpy: the photo is scaled so its long side is ``side``, padded bottom/right with
    zeros to a square, then normalised (padding included).

    The same arithmetic as :meth:`roomscan.backends.owlv2.Owlv2Detector.preprocess` (PIL bilinear resize, float32
    ``/ 255``, float32 mean and std), so an export sees the pixels its source model sees, without torch.
    """

    side: int
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @property
    def size(self) -> tuple[int, int]:
        return (self.side, self.side)

    @classmethod
    def from_file(cls, file: Path, size: tuple[int, int] | None = None) -> SquarePreprocessing:
        """Read an OWLv2 ``preprocessor_config.json`` (mean, std, size); ``size`` overrides its size.

        Raises:
            ModelUnavailableError: missing or unreadable, or a size that is not a square.
        """
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
            if size is None:
                size = (int(raw["size"]["height"]), int(raw["size"]["width"]))
            if size[0] != size[1]:
                raise ValueError(f"OWLv2 inputs are square, got size {size}")
            return cls(
                side=int(size[0]),
                image_mean=tuple(float(v) for v in raw.get("image_mean", cls.image_mean)),  # type: ignore[arg-type]
                image_std=tuple(float(v) for v in raw.get("image_std", cls.image_std)),  # type: ignore[arg-type]
            )
        except FileNotFoundError as exc:
            raise ModelUnavailableError(f"{file.parent}: no {PROCESSOR_FILE} in the ONNX model directory") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelUnavailableError(f"{file}: not a readable JSON file ({exc})") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelUnavailableError(
                f"{file}: unsupported OWLv2 image processor settings ({exc!r}); re-export the model"
            ) from exc

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> ``pixel_values`` float32 ``[batch, 3, side, side]``."""
        side = self.side
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        out = np.empty((len(images), 3, side, side), dtype=np.float32)
        for i, image in enumerate(images):
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            scale = side / max(rgb.size)
            width = min(side, max(1, round(rgb.width * scale)))
            height = min(side, max(1, round(rgb.height * scale)))
            square = np.zeros((side, side, 3), dtype=np.float32)  # [S, S, 3], zero padding bottom/right
            square[:height, :width] = np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), np.float32)
            square[:height, :width] /= 255.0
            out[i] = ((square - mean) / std).transpose(2, 0, 1)  # HWC -> CHW
        return out

    def box_scale(self, image: Image.Image) -> np.ndarray:
        """Boxes are relative to the padded square, whose side is the photo's long side."""
        return np.full(4, max(image.size), dtype=np.float32)


def _session(path: Path, device: str, intra_op_threads: int | None) -> tuple[Any, list[str]]:
    """An ONNX Runtime session on ``device`` (``cuda`` uses the CUDA provider, falling back to CPU)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelUnavailableError(
            "the onnx backend needs onnxruntime: pip install 'roomscan[train]' (or onnxruntime-gpu for CUDA)"
        ) from exc
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device.startswith("cuda") and not has_cuda:
        raise ValueError(
            f"device {device!r} was requested but onnxruntime has no CUDA provider (install onnxruntime-gpu); "
            "use --device cpu"
        )
    use_cuda = (has_cuda and device in ("auto", "")) or device.startswith("cuda")
    providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: quantised graphs log one warning per unused initializer
    # Idle threads sleep instead of spinning: on shared or oversubscribed cores spinning cost ~30% latency
    # (D-FINE-N, 2 busy cores, benchmarks/bench_onnx.py); on dedicated cores it gains a few % at most.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if intra_op_threads is not None:
        if intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be 0 (all cores) or more, got {intra_op_threads}")
        options.intra_op_num_threads = intra_op_threads
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own (InvalidProtobuf, Fail, ...) for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"{path}: ONNX Runtime cannot load this model ({first}); re-export it with `roomscan export --onnx`"
        ) from exc
    names = {o.name for o in session.get_outputs()}
    if {i.name for i in session.get_inputs()} != {"pixel_values"} or not {"logits", "pred_boxes"} <= names:
        raise ModelUnavailableError(
            f"{path}: not a roomscan detector export (needs input pixel_values, outputs logits and pred_boxes)"
        )
    return session, list(session.get_providers())


class OnnxDetector(Detector):
    """Detector for a DETR-family or OWLv2 model exported to ONNX (see :mod:`roomscan.train.export` and
    :mod:`roomscan.train.export_owlv2`).

    Args:
        model: an ONNX model directory.
        taxonomy: the taxonomy to report in; defaults to the directory's ``taxonomy.yaml``. An OWLv2 export takes
            only the taxonomy it was exported with (its prompts are baked into the graph).
        device: ``cpu``, ``cuda`` (ONNX Runtime's CUDA provider) or ``auto``.
        image_size: square input side; only for exports with a dynamic input size.
        score_threshold: one minimum score for every amenity, instead of each amenity's ``threshold``.
        nms_threshold: IoU for class-aware NMS; ``None`` disables it. Default: the source detector's (none for
            DETR models, whose output is NMS-free; 0.3 for OWLv2).
        max_detections: keep at most this many boxes per image, highest scores first.
        intra_op_threads: ONNX Runtime threads per operator (``None``: one per core).

    Raises:
        ModelUnavailableError: missing or corrupt ``model.onnx``, metadata, processor config or taxonomy.
        TaxonomyError: an OWLv2 export given a taxonomy other than the one it was exported with.
        ValueError: an ``image_size`` the export does not accept, or ``cuda`` without a CUDA provider.
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str] | ResolvedModel,
        *,
        taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
        device: str = "auto",
        image_size: int | None = None,
        score_threshold: float | None = None,
        nms_threshold: float | None | _Unset = UNSET,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
        intra_op_threads: int | None = None,
    ) -> None:
        resolved = resolve_model(model)
        path = resolved.path
        if not (path / ONNX_FILE).is_file():
            raise ModelUnavailableError(f"{resolved.name}: no {ONNX_FILE} in the model directory")
        self.metadata = read_metadata(path)
        owlv2 = self.metadata.model_type == OWLV2_MODEL_TYPE
        if owlv2:
            self.taxonomy = _baked_taxonomy(path, resolved.name, self.metadata, taxonomy)
            self.class_map = np.arange(len(self.taxonomy))  # the graph's classes are the taxonomy's amenities
        else:
            self.taxonomy, self.class_map = load_label_taxonomy(
                path,
                resolved.name,
                read_model_config(path),
                taxonomy,
                missing_hint="ONNX model directory; re-export it with `roomscan export MODEL_DIR --onnx`",
            )
        self.probability_kind = probability_kind_of(self.metadata.model_type)
        # OWLv2: a patch is one box, scored with its best amenity (as Owlv2Detector).
        self.one_box_per_query = owlv2 or self.probability_kind == "softmax"
        size = None
        if image_size is not None:
            size = (int(image_size), int(image_size))
            if size != self.metadata.input_size and not self.metadata.dynamic_size:
                raise ValueError(
                    f"{resolved.name} was exported for {self.metadata.input_size[0]}x"
                    f"{self.metadata.input_size[1]} inputs only; re-export with --image-size {image_size}"
                )
        self.preprocess: Preprocessing | SquarePreprocessing = (
            SquarePreprocessing.from_file(path / PROCESSOR_FILE, size)
            if owlv2
            else Preprocessing.from_file(path / PROCESSOR_FILE, size)
        )
        self.image_size = self.preprocess.size
        self.session, self.providers = _session(path / ONNX_FILE, str(device or "auto"), intra_op_threads)
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        self.thresholds = class_thresholds(self.taxonomy, score_threshold)
        self.nms_threshold = self.metadata.nms_threshold if isinstance(nms_threshold, _Unset) else nms_threshold
        self.max_detections = max_detections
        settings = f"size={image_size}" if image_size else ""
        self.info = ModelInfo(
            self.backend, resolved.name, resolved.version, self.taxonomy.fingerprint(), settings
        )

    def forward(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph: ``pixel_values [b, 3, h, w]`` -> ``(logits [b, q, c], pred_boxes [b, q, 4])``."""
        logits, boxes = self.session.run(["logits", "pred_boxes"], {"pixel_values": pixel_values})
        return logits, boxes

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        """Boxes in pixels and class probabilities per query: per-class sigmoids (OWLv2: per amenity, of its best
        prompt), or for softmax models (DETR) the softmax without its no-object column."""
        logits, boxes = self.forward(self.preprocess(batch))
        logits = logits.astype(np.float32)  # [b, q, n_model_classes (+1)]
        if self.probability_kind == "softmax":
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probs = (exp / exp.sum(axis=-1, keepdims=True))[..., :-1]
        else:
            probs = 1.0 / (1.0 + np.exp(-logits))
        cx, cy, w, h = np.moveaxis(boxes.astype(np.float32), -1, 0)
        xyxy = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)  # [b, q, 4] normalised
        return [RawOutput(box * self.preprocess.box_scale(im), p) for im, box, p in zip(batch, xyxy, probs)]

    @property
    def _source_backend(self) -> str:
        return "owlv2" if self.metadata.model_type == OWLV2_MODEL_TYPE else "detr"

    def _embed(self, batch: Sequence[Image.Image]) -> np.ndarray:
        raise NotImplementedError(
            "the onnx backend has no image embedding: an export's graph outputs only logits and pred_boxes; "
            f"embed with the source PyTorch model directory (the {self._source_backend} backend) instead"
        )

    def _torch_module(self) -> Any:
        raise NotImplementedError(
            "dropout sampling needs the PyTorch model: an ONNX export is frozen in inference mode; use the source "
            f"model directory (the {self._source_backend} backend) for MC dropout"
        )


def _baked_taxonomy(
    path: Path, name: str, metadata: OnnxMetadata, taxonomy: Taxonomy | str | os.PathLike[str] | None
) -> Taxonomy:
    """The taxonomy an OWLv2 export was made with (``taxonomy.yaml``, checked against the metadata's fingerprint);
    ``taxonomy``, when given, must be the same one: its prompts' embeddings are constants of the graph."""
    if not (path / TAXONOMY_FILE).is_file():
        raise ModelUnavailableError(
            f"{name}: no {TAXONOMY_FILE} in the ONNX model directory; re-export it with "
            "`roomscan export --model OWLV2 --taxonomy T --out DIR`"
        )
    try:
        baked = load_taxonomy(path / TAXONOMY_FILE)
    except TaxonomyError as exc:
        raise ModelUnavailableError(f"{name}: its {TAXONOMY_FILE} is invalid: {exc}") from exc
    if baked.fingerprint() != metadata.taxonomy:
        raise ModelUnavailableError(
            f"{name}: {TAXONOMY_FILE} (fingerprint {baked.fingerprint()}) is not the taxonomy the graph was "
            f"exported with ({metadata.taxonomy or 'none recorded'}); re-export instead of editing it"
        )
    if taxonomy is None:
        return baked
    chosen = load_taxonomy(taxonomy)
    if chosen.fingerprint() != baked.fingerprint():
        raise TaxonomyError(
            f"{name} is an OWLv2 export whose prompts for the taxonomy {baked.fingerprint()} are baked into the "
            f"graph; the taxonomy {chosen.source} ({chosen.fingerprint()}) differs. Drop --taxonomy to use the "
            "export's own, re-export with `roomscan export --model OWLV2 --taxonomy T --out DIR`, or change only "
            "thresholds with --min-score"
        )
    return baked
