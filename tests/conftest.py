"""Shared fixtures: tiny real-architecture models and synthetic photos.

Model fixtures are session-scoped (built once, ~3 s each, a few hundred kB on disk) and import torch only when a
test asks for them.

* ``tiny_owlv2_dir``: an OWLv2 directory (``Owlv2ForObjectDetection`` + ``Owlv2Processor``, random weights).
  ``get_detector(str(tiny_owlv2_dir), taxonomy=tiny_taxonomy(), score_threshold=0.0)`` reports detections on any
  photo.
* ``tiny_rtdetr_dir``: a fine-tuned-style RT-DETRv2 directory with ``taxonomy.yaml`` (:func:`_models.tiny_taxonomy`).
* ``sample_photo``: a factory ``sample_photo(size=(96, 64), fmt="JPEG", seed=0) -> bytes``.
* ``sample_image``: a factory ``sample_image(size=(96, 64), seed=0) -> PIL.Image``.
* ``s3_server``, ``s3_store_url``: a local S3 server and ``s3://<a fresh bucket>/photos`` (:mod:`_s3`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from _models import build_tiny_owlv2, build_tiny_rtdetr, make_image
from _s3 import s3_server, s3_store_url  # noqa: F401  (fixtures, for every test folder)
from PIL import Image


@pytest.fixture(scope="session")
def tiny_owlv2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_owlv2(tmp_path_factory.mktemp("tiny-owlv2"))


@pytest.fixture(scope="session")
def tiny_rtdetr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_rtdetr(tmp_path_factory.mktemp("tiny-rtdetr"))


@pytest.fixture
def sample_image() -> Callable[..., Image.Image]:
    return make_image


@pytest.fixture
def sample_photo() -> Callable[..., bytes]:
    def _photo(size: tuple[int, int] = (96, 64), fmt: str = "JPEG", seed: int = 0) -> bytes:
        buf = io.BytesIO()
        make_image(size, seed).save(buf, fmt)
        return buf.getvalue()

    return _photo
