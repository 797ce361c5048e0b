"""A cheap sweep program: f(x, y) = (x - 3)^2 + (y + 1)^2, reported over a few steps.

Flags (W&B ``${args}`` style): --x=..., --y=..., --steps=N, --fail=true (exit 3), --raise-at=K (traceback at step
K), --sleep=S (seconds per step), --second (also report g = (x + 2)^2 for multi-objective sweeps).
"""

from __future__ import annotations

import argparse
import sys
import time

from roomscan.sweep import report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float, default=0.0)
    p.add_argument("--y", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--fail", default="False")
    args, _unknown = p.parse_known_args()
    if args.fail == "True":
        print("quadratic: asked to fail", file=sys.stderr)
        sys.exit(3)
    f = (args.x - 3) ** 2 + (args.y + 1) ** 2
    for step in range(args.steps):
        time.sleep(args.sleep)
        # the value approaches f from above, so early steps already rank configurations
        report(step=step, loss=f + 1.0 / (step + 1), g=(args.x + 2) ** 2)
    print("done")


if __name__ == "__main__":
    main()
