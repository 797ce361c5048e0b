"""The ONNX backend reproduces the PyTorch DETR backend on the same photos, and refuses broken exports clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import make_image

from roomscan.backends import get_detector
from roomscan.backends.detr import DetrDetector
from roomscan.backends.onnx import METADATA_FILE, ONNX_FILE, OnnxDetector
from roomscan.errors import ModelUnavailableError

pytest.importorskip("onnxruntime")

# Non-square photos of several aspect ratios, a grey one among them.
PHOTOS = [((96, 64), 0), ((64, 96), 1), ((97, 61), 2), ((40, 70), 3), ((300, 5), 4)]


@pytest.fixture(scope="module")
def onnx_dir(tiny_rtdetr_dir, tmp_path_factory) -> Path:
    from roomscan.train.export import export_onnx

    return export_onnx(tiny_rtdetr_dir, tmp_path_factory.mktemp("onnx") / "tiny-onnx").path


@pytest.fixture(scope="module")
def pair(onnx_dir, tiny_rtdetr_dir) -> tuple[OnnxDetector, DetrDetector]:
    onnx = get_detector(onnx_dir, device="cpu", score_threshold=0.0)
    torch_ = get_detector(tiny_rtdetr_dir, device="cpu", score_threshold=0.0)
    assert isinstance(onnx, OnnxDetector) and isinstance(torch_, DetrDetector)
    return onnx, torch_


def photos() -> list:
    images = [make_image(size, seed) for size, seed in PHOTOS]
    images[1] = images[1].convert("L")
    return images


def test_preprocessing_equals_the_image_processor(pair):
    onnx, torch_ = pair
    images = [im.convert("RGB") for im in photos()]
    ours = onnx.preprocess(images)
    theirs = torch_.processor(images=images, return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape == (len(images), 3, 64, 64)
    np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


def test_raw_outputs_match_pytorch_on_a_batch(pair):
    import torch

    onnx, torch_ = pair
    pixels = onnx.preprocess([im.convert("RGB") for im in photos()])
    logits, boxes = onnx.forward(pixels)
    with torch.inference_mode():
        expected = torch_.model(pixel_values=torch.from_numpy(pixels))
    assert np.abs(logits - expected.logits.numpy()).max() <= 1e-3
    assert np.abs(boxes - expected.pred_boxes.numpy()).max() <= 1e-3
    assert np.ptp(logits) > 0.5  # outputs vary with the input, so the comparison means something


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_detections_match_the_pytorch_backend(pair, batch_size):
    onnx, torch_ = pair
    images = photos()
    ours = onnx.predict(images, batch_size=batch_size)
    theirs = torch_.predict(images, batch_size=batch_size)
    for a, b in zip(ours, theirs, strict=True):
        assert len(a) == len(b) > 0
        assert list(a.data["class_name"]) == list(b.data["class_name"])
        assert np.abs(a.xyxy - b.xyxy).max() <= 1e-3
        assert np.abs(a.confidence - b.confidence).max() <= 1e-3
        assert a.metadata["image_size"] == b.metadata["image_size"]


def test_the_factory_picks_the_onnx_backend_with_the_exports_taxonomy(onnx_dir, tiny_rtdetr_dir):
    detector = get_detector(str(onnx_dir), device="cpu")
    assert detector.info.backend == "onnx"
    assert detector.taxonomy.slugs == get_detector(tiny_rtdetr_dir, device="cpu").taxonomy.slugs
    assert detector.providers[-1] == "CPUExecutionProvider"


def test_intra_op_threads_reach_the_session(onnx_dir):
    detector = OnnxDetector(onnx_dir, device="cpu", intra_op_threads=1)
    assert detector.session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="intra_op_threads"):
        OnnxDetector(onnx_dir, device="cpu", intra_op_threads=-1)


def _broken(onnx_dir: Path, tmp_path: Path, how: str) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(onnx_dir, broken)
    if how == "corrupt model.onnx":
        (broken / ONNX_FILE).write_bytes(b"\x08\x07not a protobuf at all" * 10)
    elif how == "truncated model.onnx":
        data = (onnx_dir / ONNX_FILE).read_bytes()
        (broken / ONNX_FILE).write_bytes(data[: len(data) // 3])
    elif how == "no metadata":
        (broken / METADATA_FILE).unlink()
    elif how == "malformed metadata":
        (broken / METADATA_FILE).write_text('{"format": 1, "input_size": "big"}')
    elif how == "no taxonomy":
        (broken / "taxonomy.yaml").unlink()
    elif how == "no processor config":
        (broken / "preprocessor_config.json").unlink()
    return broken


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("corrupt model.onnx", "ONNX Runtime cannot load"),
        ("truncated model.onnx", "ONNX Runtime cannot load"),
        ("no metadata", "no roomscan_onnx.json"),
        ("malformed metadata", "malformed export metadata"),
        ("no taxonomy", "no taxonomy.yaml"),
        ("no processor config", "no preprocessor_config.json"),
    ],
)
def test_broken_exports_fail_with_a_clear_message(onnx_dir, tmp_path, how, message):
    broken = _broken(onnx_dir, tmp_path, how)
    with pytest.raises(ModelUnavailableError, match=message) as info:
        get_detector(broken, device="cpu")
    assert "Traceback" not in str(info.value)


def test_a_fixed_size_export_refuses_another_input_size(onnx_dir, tmp_path):
    fixed = tmp_path / "fixed"
    shutil.copytree(onnx_dir, fixed)
    meta = json.loads((fixed / METADATA_FILE).read_text())
    (fixed / METADATA_FILE).write_text(json.dumps({**meta, "dynamic_size": False}))
    assert get_detector(fixed, device="cpu", image_size=64).image_size == (64, 64)
    with pytest.raises(ValueError, match="exported for 64x64 inputs only"):
        get_detector(fixed, device="cpu", image_size=96)


def test_cuda_without_a_cuda_provider_is_a_clear_error(onnx_dir):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(ValueError, match="no CUDA provider"):
        OnnxDetector(onnx_dir, device="cuda")


def test_serving_an_export_imports_neither_torch_nor_transformers(onnx_dir):
    code = (
        "import sys; from PIL import Image; from roomscan.backends import get_detector; "
        f"d = get_detector({str(onnx_dir)!r}, device='cpu'); d.predict_one(Image.new('RGB', (80, 60))); "
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_class_probs_and_probability_kind_match_the_pytorch_backend(pair):
    onnx, torch_ = pair
    assert onnx.probability_kind == torch_.probability_kind == "sigmoid"
    for a, b in zip(onnx.predict(photos()), torch_.predict(photos()), strict=True):
        assert a.data["class_probs"].shape == b.data["class_probs"].shape == (len(a), 3)
        assert np.abs(a.data["class_probs"] - b.data["class_probs"]).max() <= 1e-3


def test_uncertainty_hooks_explain_what_onnx_cannot_do(pair):
    onnx, _ = pair
    with pytest.raises(NotImplementedError, match="no image embedding.*detr backend"):
        onnx.embed([make_image()])
    with pytest.raises(NotImplementedError, match="PyTorch model"), onnx.dropout_sampling():
        pass
