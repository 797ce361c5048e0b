"""Receipt reading: per-field accuracy, CER and seconds per receipt, per engine, on clean and degraded receipts.

Generates the evaluation set (``--n`` clean + ``--n`` degraded, fixed seeds) under ``--data`` unless present, then
runs ``roomscan.receipts.evaluate.evaluate_folder`` for each engine. Timings include pre-processing and field
extraction, on whatever CPU load the machine has.

    .venv/bin/python benchmarks/bench_receipts.py --n 40 --out bench_receipts.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="receipts per condition")
    parser.add_argument("--data", type=Path, default=Path("/tmp/roomscan-receipt-eval"))
    parser.add_argument("--engines", default="tesseract,rapidocr")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    from roomscan.receipts import ReceiptReader
    from roomscan.receipts.evaluate import evaluate_folder
    from roomscan.receipts.synth import write_receipts

    sets = {
        "clean": (args.data / f"clean-{args.n}", 1000, False),
        "degraded": (args.data / f"degraded-{args.n}", 2000, True),
    }
    for folder, seed, degraded in sets.values():
        if not (folder / f"receipt_{args.n - 1:03d}.json").exists():
            write_receipts(folder, args.n, seed=seed, degraded=degraded)

    results: dict[str, dict[str, object]] = {}
    for engine in args.engines.split(","):
        reader = ReceiptReader(engine)
        reader.read(next(sets["clean"][0].glob("*.png")))  # warm-up: model load is not per-receipt cost
        for condition, (folder, _, _) in sets.items():
            report = evaluate_folder(folder, reader)
            results[f"{engine}/{condition}"] = report.to_dict()
            acc = "  ".join(f"{k}={v:.3f}" for k, v in report.accuracy.items())
            print(
                f"{engine:10} {condition:9} n={report.n} s/receipt={report.seconds_per_receipt:.3f} "
                f"CER={report.cer:.4f}  {acc}",
                flush=True,
            )
            if args.show_misses:
                for name, misses in report.misses.items():
                    for miss in misses[:5]:
                        print(f"    miss {name}: {miss}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
