"""Receipt reading: per-field accuracy, CER and seconds per receipt, per engine, on two splits and three conditions.

The tuned split is ``roomscan.receipts.synth`` (``--n`` receipts per condition, fixed seeds): the receipts the
field rules were developed on. The held-out split is ``roomscan.receipts.holdout`` (12 hand-written receipts x 3
held-out fonts per condition): never tuned on; report it next to the tuned one. Conditions: clean scans, degraded
photos (table, tilt within 8 degrees, light, blur, JPEG), rotated photos (sideways, upside down, beyond 15 degrees).
The sets are written under ``--data`` unless present. Timings include pre-processing, orientation retries and
field extraction, on whatever CPU load the machine has.

    .venv/bin/python benchmarks/bench_receipts.py --n 40 --out bench_receipts.json
    .venv/bin/python benchmarks/bench_receipts.py --engines tesseract --sets tuned/clean,held-out/clean
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
    parser.add_argument(
        "--sets", default="", help="comma-separated prefixes (tuned, held-out/clean...); all if empty"
    )
    parser.add_argument(
        "--show-misses", action="store_true", help="print misses (never tune on held-out ones)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

    from roomscan.receipts import ReceiptReader
    from roomscan.receipts.evaluate import evaluate_folder
    from roomscan.receipts.holdout import CONDITIONS, write_holdout
    from roomscan.receipts.synth import write_receipts

    sets: dict[str, Path] = {}
    for index, condition in enumerate(CONDITIONS):
        folder = args.data / f"tuned-{condition}-{args.n}"
        if not (folder / f"receipt_{args.n - 1:03d}.json").exists():
            write_receipts(
                folder, args.n, seed=1000 * (index + 1), degraded=condition == "degraded",
                rotated=condition == "rotated",
            )  # fmt: skip
        sets[f"tuned/{condition}"] = folder
    for condition in CONDITIONS:
        folder = args.data / f"held-out-{condition}"
        if not any(folder.glob("*.json")):
            write_holdout(folder, condition=condition)
        sets[f"held-out/{condition}"] = folder
    wanted = [s for s in sets if not args.sets or any(s.startswith(w) for w in args.sets.split(","))]

    results: dict[str, dict[str, object]] = {}
    for engine in args.engines.split(","):
        reader = ReceiptReader(engine)
        reader.read(next(sets["tuned/clean"].glob("*.png")))  # warm-up: model load is not per-receipt cost
        for name in wanted:
            report = evaluate_folder(sets[name], reader)
            results[f"{engine}/{name}"] = report.to_dict()
            acc = "  ".join(f"{k}={v:.3f}" for k, v in report.accuracy.items())
            print(
                f"{engine:10} {name:18} n={report.n} s/receipt={report.seconds_per_receipt:.3f} "
                f"CER={report.cer:.4f}  {acc}",
                flush=True,
            )
            if args.show_misses:
                for field, misses in report.misses.items():
                    for miss in misses[:5]:
                        print(f"    miss {field}: {miss}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
