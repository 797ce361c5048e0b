"""The backend factory: what ``get_detector`` accepts, and that importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

from roomscan import backends
from roomscan.backends import available_backends, get_detector
from roomscan.backends.owlv2 import Owlv2Detector


def test_importing_backends_does_not_import_torch():
    code = (
        "import sys, roomscan.backends, roomscan.backends._hub; "
        "heavy = [m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_surface():
    assert set(backends.__all__) >= {
        "Detector",
        "ModelInfo",
        "get_detector",
        "list_models",
        "pull_model",
        "available_backends",
    }


def test_available_backends_lists_installed_ones():
    assert set(available_backends()) == {"owlv2", "detr", "onnx"}


def test_owlv2_directory_picks_the_owlv2_backend(tiny_owlv2_dir):
    detector = get_detector(tiny_owlv2_dir, device="cpu")
    assert isinstance(detector, Owlv2Detector)
    assert detector.info.backend == "owlv2"
    assert len(detector.taxonomy) == 30  # the default taxonomy


def test_options_reach_the_backend(tiny_owlv2_dir):
    detector = get_detector(
        str(tiny_owlv2_dir),
        device="cpu",
        image_size=32,
        score_threshold=0.5,
        nms_threshold=None,
        max_detections=7,
    )
    assert detector.image_size == 32 and detector.nms_threshold is None and detector.max_detections == 7
    assert set(detector.thresholds.tolist()) == {0.5}
