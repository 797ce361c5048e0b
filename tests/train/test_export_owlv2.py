"""``export_owlv2`` and ``roomscan export --model OWLV2``: the directory, the parity gate, int8, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _models import make_image, tiny_taxonomy

from roomscan.backends import get_detector
from roomscan.backends.onnx import METADATA_FILE, read_metadata
from roomscan.errors import ModelUnavailableError, TaxonomyError

pytest.importorskip("onnxruntime")

from roomscan.train.export import ExportConfig, ExportError, export_onnx
from roomscan.train.export_owlv2 import amenity_spans, export_owlv2


@pytest.fixture(scope="module")
def exported(tiny_owlv2_dir, tmp_path_factory) -> Path:
    return export_owlv2(tiny_owlv2_dir, tmp_path_factory.mktemp("owl") / "owl-onnx", taxonomy=tiny_taxonomy()).path


def test_the_export_directory_holds_what_the_backend_needs(exported):
    names = {p.name for p in exported.iterdir()}
    assert names == {"model.onnx", "preprocessor_config.json", "config.json", "taxonomy.yaml", METADATA_FILE}
    meta = read_metadata(exported)
    assert (meta.model_type, meta.input_size, meta.dynamic_size, meta.int8) == ("owlv2", (64, 64), False, False)
    assert meta.taxonomy == tiny_taxonomy().fingerprint() and meta.nms_threshold == 0.3
    parity = meta.checks["onnx_vs_torch"]
    assert parity["scores_max_abs"] < 1e-4 and parity["pred_boxes_max_abs"] < 1e-4
    assert parity["scores_mean_abs"] <= parity["scores_max_abs"]
    processor = json.loads((exported / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 64, "width": 64} and len(processor["image_mean"]) == 3


def test_the_graph_outputs_one_logit_per_amenity_and_accepts_any_batch(exported):
    import onnxruntime as ort
    import numpy as np

    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        logits, boxes = session.run(None, {"pixel_values": np.zeros((batch, 3, 64, 64), np.float32)})
        assert logits.shape == (batch, 64, 3) and boxes.shape == (batch, 64, 4)  # 8x8 patches, 3 amenities


def test_amenity_spans_follow_the_prompt_order():
    assert amenity_spans(tiny_taxonomy()) == [(0, 2), (2, 3), (3, 6)]  # bed: 2 prompts, oven: 1, sink: 3


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_int8_export_records_its_drift_and_is_served(tiny_owlv2_dir, tmp_path, method):
    photos = []
    if method == "static":  # calibration photos go through OWLv2's own pre-processing
        for seed in range(2):
            photos.append(tmp_path / f"calib-{seed}.jpg")
            make_image((120, 80), seed).save(photos[-1])
    config = ExportConfig(int8=True, calibration=tuple(photos))
    result = export_owlv2(tiny_owlv2_dir, tmp_path / "int8", config, taxonomy=tiny_taxonomy())
    meta = result.metadata
    assert meta.int8 and meta.quantization == method
    assert set(meta.checks) == {"onnx_vs_torch", "int8_vs_torch", "int8_vs_fp32"}
    assert 0 < meta.checks["int8_vs_fp32"]["scores_max_abs"] < 0.2
    assert len(get_detector(result.path, device="cpu", score_threshold=0.0).predict_one(make_image())) > 0


def test_image_size_picks_the_grid(tiny_owlv2_dir, tmp_path):
    meta = export_owlv2(tiny_owlv2_dir, tmp_path / "s", ExportConfig(image_size=32), taxonomy=tiny_taxonomy()).metadata
    assert meta.input_size == (32, 32) and meta.source_model.endswith("/size=32")


def test_a_second_export_replaces_the_first_and_leaves_no_work_directory(exported, tiny_owlv2_dir, tmp_path):
    out = shutil.copytree(exported, tmp_path / "again")
    (out / "stale.txt").write_text("from the first export")
    export_owlv2(tiny_owlv2_dir, out, taxonomy=tiny_taxonomy())
    assert not (out / "stale.txt").exists() and (out / "model.onnx").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


def test_a_failed_parity_gate_writes_nothing(tiny_owlv2_dir, tmp_path):
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* \(tolerance 1e-12\)"):
        export_owlv2(tiny_owlv2_dir, tmp_path / "out", ExportConfig(tolerance=1e-12), taxonomy=tiny_taxonomy())
    assert list(tmp_path.iterdir()) == []


def test_a_graph_onnx_runtime_cannot_quantise_fails_clearly_and_writes_nothing(
    tiny_owlv2_dir, tmp_path, monkeypatch
):
    import roomscan.train.export as export

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("Unsupported op: ConvInteger")  # onnxruntime.quantization raises plain exceptions

    monkeypatch.setattr(export, "quantize_int8", refuse)
    with pytest.raises(ExportError, match=r"^int8 quantisation failed: Unsupported op: ConvInteger$"):
        export_owlv2(tiny_owlv2_dir, tmp_path / "out", ExportConfig(int8=True), taxonomy=tiny_taxonomy())
    assert list(tmp_path.iterdir()) == []


def _rtdetr(tiny_rtdetr_dir: Path, tmp_path: Path) -> Path:
    return tiny_rtdetr_dir


def _onnx(exported: Path, tmp_path: Path) -> Path:
    return exported


@pytest.mark.parametrize(
    ("source", "kwargs", "error", "message"),
    [
        ("missing", {}, ModelUnavailableError, "no such model directory"),
        ("rtdetr", {}, ExportError, "not an OWLv2 checkpoint"),
        ("onnx", {}, ExportError, "already an ONNX export"),
        ("owl", {"config": ExportConfig(image_size=100)}, ExportError, "multiple of the patch size 8"),
        ("owl", {"taxonomy": "{tmp}/nope.yaml"}, TaxonomyError, "nope.yaml"),
        ("owl", {"out_dir": "{owl}"}, ExportError, "must differ from the model directory"),
        ("owl", {"out_dir": "{tmp}/precious"}, ExportError, "not an earlier ONNX export"),
        ("owl", {"out_dir": "{tmp}/precious/thesis.txt/out"}, ExportError, "cannot write the export there"),
    ],
    ids=["missing", "not-owlv2", "already-onnx", "off-grid-size", "no-taxonomy-file", "out-is-source", "precious",
         "out-under-a-file"],
)
def test_bad_input_fails_clearly_and_writes_nothing(
    tiny_owlv2_dir, tiny_rtdetr_dir, exported, tmp_path, source, kwargs, error, message
):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("keep me")
    model = {"missing": tmp_path / "gone", "rtdetr": tiny_rtdetr_dir, "onnx": exported, "owl": tiny_owlv2_dir}
    kwargs = {
        k: v.format(tmp=tmp_path, owl=tiny_owlv2_dir) if isinstance(v, str) else v for k, v in kwargs.items()
    }
    kwargs.setdefault("out_dir", tmp_path / "out")
    with pytest.raises(error, match=message):
        export_owlv2(model[source], **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "keep me"


def test_export_onnx_points_owlv2_to_its_own_export(tiny_owlv2_dir, tmp_path):
    with pytest.raises(ExportError, match=r"model_type 'owlv2'.*--model DIR --taxonomy T"):
        export_onnx(tiny_owlv2_dir, tmp_path / "out")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    from roomscan.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exports_owlv2_by_model_type(capsys, tiny_owlv2_dir, tmp_path):
    taxonomy = tmp_path / "amenities.yaml"
    tiny_taxonomy().save(taxonomy)
    out_dir = tmp_path / "cli"
    args = ["export", "--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy), "--image-size", "32", "--int8"]
    code, out, err = _run(capsys, *args, "--out", str(out_dir), "--json")
    assert code == 0, err
    meta = json.loads(out)
    assert meta["path"] == str(out_dir) and meta["model_type"] == "owlv2" and meta["input_size"] == [32, 32]
    assert meta["int8"] and meta["taxonomy"] == tiny_taxonomy().fingerprint()
    assert {"onnx_vs_torch", "int8_vs_torch", "int8_vs_fp32"} <= set(meta["checks"])
    code, out, err = _run(capsys, "export", str(tiny_owlv2_dir), "--onnx", "--taxonomy", str(taxonomy),
                          "--out", str(tmp_path / "positional"))
    assert code == 0 and "taxonomy" in err and "baked in" in err, err
    assert out.strip() == str(tmp_path / "positional")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{owl}", "--model", "{owl}"], "MODEL_DIR or --model"),
        ([], "MODEL_DIR or --model"),
        (["{rtdetr}", "--onnx", "--taxonomy", "{tmp}/t.yaml"], "--taxonomy applies to OWLv2 exports only"),
        (["--model", "{tmp}/missing"], "no such model directory"),
    ],
    ids=["both", "neither", "taxonomy-for-detr", "missing"],
)
def test_cli_bad_input_exits_2_with_a_message(capsys, tiny_owlv2_dir, tiny_rtdetr_dir, tmp_path, args, message):
    args = [a.format(owl=tiny_owlv2_dir, rtdetr=tiny_rtdetr_dir, tmp=tmp_path) for a in args]
    code, _, err = _run(capsys, "export", *args, "--out", str(tmp_path / "out"))
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
