"""``roomscan export``: turn a model into an ONNX model directory for fast CPU serving.

A fine-tuned DETR-family directory exports with its own ``taxonomy.yaml``; an OWLv2 checkpoint (``--model owlv2``
or its directory, told apart by its ``config.json``'s ``model_type``) exports for one ``--taxonomy``, whose prompts
are baked into the graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from roomscan.cli._common import IMAGE_SUFFIXES
from roomscan.cli._console import console, err_console


def export(
    model_dir: Path | None = typer.Argument(None, help="Fine-tuned RT-DETR / RT-DETRv2 / D-FINE or OWLv2 model directory (or use --model).", metavar="MODEL_DIR"),
    model: str | None = typer.Option(None, "--model", "-m", help="The model to export instead of MODEL_DIR: a name (owlv2), a Hugging Face id or a directory; implies --onnx."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help="OWLv2 only: amenity taxonomy YAML whose prompts are baked into the export (default: the 30 built-in amenities)."),
    onnx: bool = typer.Option(False, "--onnx", help="Export to ONNX (the only format for now; implied by --model)."),
    out: Path | None = typer.Option(None, "--out", help="Export directory (default: MODEL_DIR-onnx, or -onnx-int8; ./<name>-onnx for a hub model)."),
    int8: bool = typer.Option(False, "--int8", help="Quantise to int8 with ONNX Runtime (dynamic unless --calibration)."),
    calibration: Path | None = typer.Option(None, "--calibration", help="Photos (file or directory) to calibrate static int8 quantisation; implies --int8."),
    image_size: int | None = typer.Option(None, "--image-size", min=32, max=4096, help="Square input side (default: the model's processor size; OWLv2: 960 native, 640 faster; a multiple of its patch size, 16)."),
    opset: int = typer.Option(17, "--opset", min=13, max=21, help="ONNX opset version."),
    as_json: bool = typer.Option(False, "--json", help="Print the export metadata as JSON."),
) -> None:
    """Export a model to ONNX, check it against PyTorch, and write a directory `--model` accepts.

    Serve the result with `roomscan detect --model OUT` or `roomscan serve --model OUT` (ONNX Runtime, no torch).
    OWLv2: `roomscan export --model owlv2 --taxonomy amenities.yaml --image-size 640 --out owlv2-640-onnx`; the
    export detects that taxonomy's amenities only.
    """
    from roomscan.backends import resolve_model
    from roomscan.train.export import ExportConfig, ExportError, export_onnx
    from roomscan.train.export_owlv2 import export_owlv2, is_owlv2

    if (model_dir is None) == (model is None):
        raise ExportError("name the model to export once: MODEL_DIR or --model (e.g. --model owlv2)")
    if not onnx and model is None:
        raise ExportError("choose an export format: --onnx")
    photos: tuple[Path, ...] = ()
    if calibration is not None:
        if calibration.is_dir():
            photos = tuple(sorted(p for p in calibration.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif calibration.is_file():
            photos = (calibration,)
        if not photos:
            raise ExportError(f"{calibration}: no calibration photos (.jpg, .png...) there")
    config = ExportConfig(image_size=image_size, opset=opset, int8=int8, calibration=photos)
    # MODEL_DIR is a directory, never a hub id: a mistyped path must not start a download.
    source = resolve_model(model) if model is not None else None
    path = source.path if source is not None else Path(str(model_dir))
    owlv2 = (path / "config.json").is_file() and not (path / "model.onnx").exists() and is_owlv2(path)
    if taxonomy is not None and not owlv2:
        raise ExportError(
            "--taxonomy applies to OWLv2 exports only: a fine-tuned model exports with its own taxonomy.yaml"
        )
    with err_console.status("Exporting…") as status:
        if owlv2:
            result = export_owlv2(
                source or path, out, config, taxonomy=taxonomy, progress=lambda msg: status.update(msg)
            )
        else:
            result = export_onnx(path, out, config, progress=lambda msg: status.update(msg))
    meta = result.metadata
    if as_json:
        console.print_json(json.dumps({"path": str(result.path), **meta.to_json()}))
        return
    parity = meta.checks["onnx_vs_torch"] if meta.checks else {}
    err_console.print(f"[green]exported[/] {meta.source_model} -> {result.path}", highlight=False)
    if owlv2:
        err_console.print(
            f"input {meta.input_size[0]}x{meta.input_size[1]}, opset {meta.opset}, taxonomy {meta.taxonomy} "
            f"baked in; ONNX vs PyTorch: scores {parity.get('scores_max_abs', 0):.1e} max |diff|, boxes "
            f"{parity.get('pred_boxes_max_abs', 0):.1e}",
            highlight=False,
        )
    else:
        err_console.print(
            f"input {meta.input_size[0]}x{meta.input_size[1]}{' (any size accepted)' if meta.dynamic_size else ''}, "
            f"opset {meta.opset}; ONNX vs PyTorch: {parity.get('set_max_abs', 0):.1e} max |diff| "
            "(queries compared as a set: tied queries may swap slots)",
            highlight=False,
        )
    if meta.int8 and meta.checks and "int8_vs_fp32" in meta.checks:
        q = meta.checks["int8_vs_fp32"]
        err_console.print(
            f"int8 ({meta.quantization}) vs fp32 max |diff|: scores {q['scores_max_abs']:.3f}, boxes "
            f"{q['pred_boxes_max_abs']:.3f} (check accuracy on your validation set before deploying)",
            highlight=False,
        )
    console.print(str(result.path))
