"""``export_onnx`` and ``roomscan export``: what an export directory holds, int8, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _models import build_tiny_owlv2, make_image

from roomscan.backends import get_detector
from roomscan.backends.onnx import METADATA_FILE, read_metadata
from roomscan.errors import ModelUnavailableError

pytest.importorskip("onnxruntime")

from roomscan.train.export import ExportConfig, ExportError, export_onnx


@pytest.fixture(scope="module")
def exported(tiny_rtdetr_dir, tmp_path_factory) -> Path:
    return export_onnx(tiny_rtdetr_dir, tmp_path_factory.mktemp("export") / "tiny-onnx").path


def test_the_export_directory_holds_what_the_backend_needs(exported, tiny_rtdetr_dir):
    names = {p.name for p in exported.iterdir()}
    assert names == {"model.onnx", "preprocessor_config.json", "config.json", "taxonomy.yaml", METADATA_FILE}
    meta = read_metadata(exported)
    source_key = get_detector(tiny_rtdetr_dir, device="cpu").info.key
    assert meta.source_model == source_key
    assert (meta.model_type, meta.input_size, meta.opset, meta.int8) == ("rt_detr_v2", (64, 64), 17, False)
    assert meta.dynamic_size
    assert meta.checks is not None
    for check in ("onnx_vs_torch", "onnx_vs_torch_other_size"):
        assert meta.checks[check]["logits_max_abs"] <= 1e-3
        assert meta.checks[check]["pred_boxes_max_abs"] <= 1e-3
        assert meta.checks[check]["set_max_abs"] <= meta.checks[check]["logits_max_abs"] + 1e-3


def test_a_second_export_replaces_the_first(exported, tiny_rtdetr_dir, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(exported, out)
    (out / "stale.txt").write_text("from the first export")
    export_onnx(tiny_rtdetr_dir, out)
    assert not (out / "stale.txt").exists() and (out / "model.onnx").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no work directories left behind


def test_a_graph_onnx_runtime_cannot_quantise_fails_clearly_and_writes_nothing(
    tiny_rtdetr_dir, tmp_path, monkeypatch
):
    import roomscan.train.export as export

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("Unsupported op: ConvInteger")  # onnxruntime.quantization raises plain exceptions

    monkeypatch.setattr(export, "quantize_int8", refuse)
    out = tmp_path / "exports"
    with pytest.raises(ExportError, match=r"^int8 quantisation failed: Unsupported op: ConvInteger$"):
        export_onnx(tiny_rtdetr_dir, out / "int8", ExportConfig(int8=True))
    assert list(out.iterdir()) == []  # no half-written export, no work directory


def _without_taxonomy(src: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "bare"
    shutil.copytree(src, bare)
    (bare / "taxonomy.yaml").unlink()
    return bare


def _not_a_model(src: Path, tmp_path: Path) -> Path:
    (tmp_path / "photos").mkdir()
    return tmp_path / "photos"


def _owlv2(src: Path, tmp_path: Path) -> Path:
    return build_tiny_owlv2(tmp_path / "owl")


def _export(src: Path, tmp_path: Path) -> Path:
    return shutil.copytree(src, tmp_path / "onnx")


def _corrupt_weights(src: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "corrupt"
    shutil.copytree(src, bad)
    (bad / "model.safetensors").write_bytes(b"garbage" * 100)
    return bad


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda src, tmp: tmp / "missing", ExportError, "no such model directory"),
        (_not_a_model, ModelUnavailableError, "not a model directory"),
        (_without_taxonomy, ModelUnavailableError, "no taxonomy.yaml"),
        (_owlv2, ExportError, "cannot export model_type 'owlv2'"),
        (_export, ExportError, "already an ONNX export"),
        (_corrupt_weights, ModelUnavailableError, "cannot load"),
    ],
    ids=["missing", "not-a-model", "no-taxonomy", "owlv2", "already-onnx", "corrupt-weights"],
)
def test_bad_sources_fail_clearly(tiny_rtdetr_dir, exported, tmp_path, make, error, message):
    source = make(exported if make is _export else tiny_rtdetr_dir, tmp_path)
    with pytest.raises(error, match=message):
        export_onnx(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_what_is_not_an_export(tiny_rtdetr_dir, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier ONNX export"):
        export_onnx(tiny_rtdetr_dir, tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"opset": 5}, "opset must be between"), ({"image_size": 8}, "image_size must be between")],
)
def test_bad_settings_fail_clearly(kwargs, message):
    with pytest.raises(ExportError, match=message):
        ExportConfig(**kwargs)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    from roomscan.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exports_int8_at_another_size(capsys, tiny_rtdetr_dir, tmp_path):
    out_dir = tmp_path / "cli"
    args = ["export", str(tiny_rtdetr_dir), "--onnx", "--int8", "--image-size", "96", "--out", str(out_dir)]
    code, out, err = _run(capsys, *args, "--json")
    assert code == 0, err
    meta = json.loads(out)
    assert meta["path"] == str(out_dir) and meta["input_size"] == [96, 96]
    assert meta["int8"] and meta["quantization"] == "dynamic"
    assert set(meta["checks"]["int8_vs_fp32"]) == {
        "logits_max_abs",
        "pred_boxes_max_abs",
        "scores_max_abs",
        "set_max_abs",
    }
    processor = json.loads((out_dir / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 96, "width": 96}
    detector = get_detector(out_dir, device="cpu", score_threshold=0.0)
    assert detector.image_size == (96, 96) and len(detector.predict_one(make_image())) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/x"], "choose an export format: --onnx"),
        (["--onnx", "--calibration", "{tmp}"], "no calibration photos"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(capsys, tiny_rtdetr_dir, tmp_path, args, message):
    code, _, err = _run(capsys, "export", str(tiny_rtdetr_dir), *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_rejects_a_directory_that_is_not_a_model(capsys, tmp_path):
    code, _, err = _run(capsys, "export", str(tmp_path), "--onnx")
    assert code == 2 and "not a model directory" in err


def test_parity_treats_queries_as_a_set_and_tolerates_tied_queries_swapping_slots():
    import numpy as np

    from roomscan.train.export import _set_distance

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 6, 3)).astype(np.float32)
    logits[0, 4:] = -5.0  # two queries tied on every class (an untrained model's uniform tokens)...
    boxes = rng.uniform(size=(1, 6, 4)).astype(np.float32)
    order = np.array([2, 0, 1, 3, 4, 5])
    swapped_boxes = boxes[:, order].copy()
    swapped_boxes[0, [4, 5]] = rng.uniform(size=(2, 4))  # ...picked other anchors on the other side
    assert _set_distance((logits, boxes), (logits[:, order], swapped_boxes)) < 1e-6
    moved = swapped_boxes.copy()
    moved[0, 0] += 0.2  # a real difference in an untied query is caught
    assert _set_distance((logits, boxes), (logits[:, order], moved)) > 0.1
