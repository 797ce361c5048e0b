"""``roomscan export``: turn a fine-tuned model directory into an ONNX model directory for fast CPU serving."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from roomscan.cli._common import IMAGE_SUFFIXES
from roomscan.cli._console import console, err_console


def export(
    model_dir: Path = typer.Argument(..., help="Fine-tuned RT-DETR / RT-DETRv2 / D-FINE model directory.", metavar="MODEL_DIR"),
    onnx: bool = typer.Option(False, "--onnx", help="Export to ONNX (the only format for now)."),
    out: Path | None = typer.Option(None, "--out", help="Export directory (default: MODEL_DIR-onnx, or -onnx-int8)."),
    int8: bool = typer.Option(False, "--int8", help="Quantise to int8 with ONNX Runtime (dynamic unless --calibration)."),
    calibration: Path | None = typer.Option(None, "--calibration", help="Photos (file or directory) to calibrate static int8 quantisation; implies --int8."),
    image_size: int | None = typer.Option(None, "--image-size", min=32, max=4096, help="Square input side (default: the model's processor size)."),
    opset: int = typer.Option(17, "--opset", min=13, max=21, help="ONNX opset version."),
    as_json: bool = typer.Option(False, "--json", help="Print the export metadata as JSON."),
) -> None:
    """Export a model directory to ONNX, check it against PyTorch, and write a directory `--model` accepts.

    Serve the result with `roomscan detect --model OUT` or `roomscan serve --model OUT` (ONNX Runtime, no torch).
    """
    from roomscan.train.export import ExportConfig, ExportError, export_onnx

    if not onnx:
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
    with err_console.status("Exporting…") as status:
        result = export_onnx(model_dir, out, config, progress=lambda msg: status.update(msg))
    meta = result.metadata
    if as_json:
        console.print_json(json.dumps({"path": str(result.path), **meta.to_json()}))
        return
    parity = meta.checks["onnx_vs_torch"] if meta.checks else {}
    err_console.print(f"[green]exported[/] {meta.source_model} -> {result.path}", highlight=False)
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
