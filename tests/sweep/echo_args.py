"""A sweep program that records what it was given: its arguments (and a ``--config`` JSON file's contents) go to
``$ECHO_ARGS_DIR/<trial>.json``; then it reports ``val_loss`` and ``val_acc`` for ``epochs`` steps.

It reads ``epochs`` from ``--epochs=N``, ``epochs=N`` or ``trainer.max_epochs=N`` (default 2).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    record: dict = {"argv": argv}
    if "--config" in argv:
        record["config"] = json.loads(Path(argv[argv.index("--config") + 1]).read_text())
    out = Path(os.environ["ECHO_ARGS_DIR"]) / f"{os.environ['ROOMSCAN_SWEEP_TRIAL']}.json"
    out.write_text(json.dumps(record))
    pairs = dict(a.lstrip("-").split("=", 1) for a in argv if "=" in a)
    epochs = int(pairs.get("epochs", pairs.get("trainer.max_epochs", 2)))
    for step in range(epochs):
        print(json.dumps({"step": step, "val_loss": 1.0 / (step + 1), "val_acc": step / epochs}))


if __name__ == "__main__":
    main()
