"""Latency of PyTorch eager vs ONNX Runtime (fp32, int8) per 640 px image, at real model sizes, and what bounds it.

Builds two detectors with random weights (speed does not depend on the weights; nothing is downloaded), saves each
as a fine-tuned model directory (30-amenity default taxonomy), exports it with ``roomscan.train.export`` and times
``predict`` on one photo (1024x768 JPEG-sized image, resized to 640x640: preprocessing and post-processing
included) through the real backends:

* ``rtdetr-v2-r18``: ``RTDetrV2Config`` defaults with a ResNet-18-vd backbone and 3 decoder layers (the
  ``PekingU/rtdetr_v2_r18vd`` architecture);
* ``d-fine-n``: ``DFineConfig`` sized like D-FINE nano (HGNetV2-B0 backbone, 2 feature levels, d_model 128,
  3 decoder layers: the values transformers' conversion script uses for ``dfine_n_coco``).

For each it prints ms/image (median of ``--runs`` after ``--warmup`` runs), the speed-up over eager, the model's
GFLOPs (``torch.utils.flop_counter``; deformable-attention sampling is not counted, a few % at most), the int8
drift vs fp32 on the same inputs (random weights: an upper bound on structure, not a measure of accuracy), and the
floor that compute puts on latency: GFLOPs / the measured fp32 matmul peak of the threads used.

    .venv/bin/python benchmarks/bench_onnx.py                          # both models, 2 threads (~3-5 min)
    .venv/bin/python benchmarks/bench_onnx.py --models d-fine-n --threads 2 --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SIZE = 640


def rtdetr_v2_r18_config(num_labels: int):  # type: ignore[no-untyped-def]
    from transformers import RTDetrV2Config

    backbone = {
        "model_type": "rt_detr_resnet",
        "layer_type": "basic",
        "depths": [2, 2, 2, 2],
        "hidden_sizes": [64, 128, 256, 512],
        "embedding_size": 64,
        "downsample_in_bottleneck": True,
        "out_features": ["stage2", "stage3", "stage4"],
    }
    return RTDetrV2Config(
        backbone_config=backbone,
        encoder_in_channels=[128, 256, 512],
        hidden_expansion=0.5,
        decoder_layers=3,
        num_labels=num_labels,
        use_pretrained_backbone=False,
    )


def dfine_nano_config(num_labels: int):  # type: ignore[no-untyped-def]
    from transformers import DFineConfig, HGNetV2Config

    backbone = HGNetV2Config(
        hidden_sizes=[128, 256, 512, 1024],
        stem_channels=[3, 16, 16],
        stage_in_channels=[16, 64, 256, 512],
        stage_mid_channels=[16, 32, 64, 128],
        stage_out_channels=[64, 256, 512, 1024],
        stage_num_blocks=[1, 1, 2, 1],
        stage_downsample=[False, True, True, True],
        stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5],
        stage_numb_of_layers=[3, 3, 3, 3],
        out_indices=[3, 4],
        use_learnable_affine_block=True,
    )
    return DFineConfig(
        backbone_config=backbone,
        num_feature_levels=2,
        encoder_ffn_dim=512,
        encode_proj_layers=[1],
        d_model=128,
        encoder_hidden_dim=128,
        decoder_ffn_dim=512,
        encoder_in_channels=[512, 1024],
        decoder_n_points=[6, 6],
        decoder_in_channels=[128, 128],
        feat_strides=[16, 32],
        depth_mult=0.5,
        decoder_layers=3,
        hidden_expansion=0.34,
        num_labels=num_labels,
        use_pretrained_backbone=False,
    )


MODELS = {"rtdetr-v2-r18": rtdetr_v2_r18_config, "d-fine-n": dfine_nano_config}


def build(name: str, path: Path) -> Path:
    import torch
    from _models import reinit_weights
    from transformers import AutoModelForObjectDetection, RTDetrImageProcessor

    from roomscan.backends.detr import save_model_dir
    from roomscan.taxonomy import default_taxonomy

    taxonomy = default_taxonomy()
    torch.manual_seed(0)
    model = AutoModelForObjectDetection.from_config(MODELS[name](len(taxonomy))).eval()
    # Default init collapses BatchNorm'd features to ~0 (every query ties); small normal weights make outputs vary.
    reinit_weights(model, std=0.05)
    return save_model_dir(model, RTDetrImageProcessor(size={"height": SIZE, "width": SIZE}), taxonomy, path)


def gflops(model) -> float:  # type: ignore[no-untyped-def]
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(pixel_values=torch.rand(1, 3, SIZE, SIZE))
    return counter.get_total_flops() / 1e9


def matmul_peak_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul with ``threads`` threads: what this CPU sustains on dense math."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def time_predict(detector, image, warmup: int, runs: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        detector.predict_one(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.predict_one(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads and ONNX Runtime intra-op threads"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--calibration", type=int, default=8, help="synthetic photos for static int8")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import numpy as np
    import torch
    from _models import make_image

    from roomscan.backends import get_detector
    from roomscan.backends.onnx import OnnxDetector
    from roomscan.train.export import ExportConfig, export_onnx

    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops(args.threads)
    print(f"fp32 matmul peak with {args.threads} threads: {peak:.0f} GFLOP/s (torch, 2048x2048)", flush=True)
    photo = make_image((1024, 768), seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            src = build(name, Path(tmp) / name)
            eager = get_detector(src, device="cpu")
            flops = gflops(eager.model)
            params = sum(p.numel() for p in eager.model.parameters()) / 1e6
            print(f"\n{name}: {params:.1f} M parameters, {flops:.1f} GFLOPs at {SIZE}x{SIZE}", flush=True)
            eager_ms = time_predict(eager, photo, args.warmup, args.runs)
            print(f"  torch eager        {eager_ms:8.1f} ms/image", flush=True)
            rows.append((name, "torch eager", eager_ms, flops))
            variants = [("onnx fp32", ExportConfig())]
            if not args.no_int8:
                calibration = []
                for seed in range(args.calibration):
                    file = Path(tmp) / f"calib-{seed}.jpg"
                    make_image((1024, 768), seed=100 + seed).save(file, quality=90)
                    calibration.append(file)
                variants += [
                    ("onnx int8 dyn", ExportConfig(int8=True)),
                    ("onnx int8 static", ExportConfig(calibration=tuple(calibration))),
                ]
            for label, config in variants:
                start = time.perf_counter()
                result = export_onnx(src, Path(tmp) / f"{name}-{label.replace(' ', '-')}", config)
                took = time.perf_counter() - start
                detector = OnnxDetector(result.path, device="cpu", intra_op_threads=args.threads)
                ms = time_predict(detector, photo, args.warmup, args.runs)
                checks = result.metadata.checks or {}
                drift = checks.get("int8_vs_fp32", checks.get("onnx_vs_torch", {}))
                if "int8_vs_fp32" not in checks:
                    print(f"  {'':<18} onnx vs torch: {checks.get('onnx_vs_torch')}", flush=True)
                vs = "vs fp32" if "int8_vs_fp32" in checks else "vs torch"
                print(
                    f"  {label:<18} {ms:8.1f} ms/image  x{eager_ms / ms:.2f} vs eager  (export {took:.0f} s; "
                    f"{vs} max|d score| {drift.get('scores_max_abs', float('nan')):.2g}, max|d box| "
                    f"{drift.get('pred_boxes_max_abs', float('nan')):.2g})",
                    flush=True,
                )
                rows.append((name, label, ms, flops))
                # Where the time goes: the graph alone on a preprocessed batch of one.
                pixels = detector.preprocess([photo])
                detector.forward(pixels)
                start = time.perf_counter()
                for _ in range(3):
                    detector.forward(pixels)
                graph_ms = (time.perf_counter() - start) / 3 * 1000
                print(
                    f"  {'':<18} graph only {graph_ms:6.1f} ms; pre+post {ms - graph_ms:5.1f} ms", flush=True
                )
            del eager
    print(f"\nsummary (ms per {SIZE} px image, {args.threads} threads; compute floor = GFLOPs / matmul peak)")
    for name, label, ms, flops in rows:
        floor = flops / peak * 1000
        print(
            f"  {name:<15} {label:<16} {ms:8.1f} ms   floor {floor:6.1f} ms   {flops / (ms / 1000):6.1f} GFLOP/s"
        )
    _ = np


if __name__ == "__main__":
    main()
