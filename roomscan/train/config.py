"""``TrainConfig``: everything that defines a training run, validated once, saved as ``config.yaml``.

Built from CLI flags, optionally on top of a YAML file (flags win). Two runs with equal configs and equal dataset
fingerprints train identically (on the same device and library versions).

Example:
    >>> cfg = TrainConfig(data="data/amenities", model="PekingU/rtdetr_v2_r18vd", epochs=12)
    >>> cfg.replace(lr=5e-5).lr
    5e-05
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from roomscan.errors import RoomscanError

CONFIG_FILE = "config.yaml"
DEFAULT_MODEL = "PekingU/rtdetr_v2_r18vd"

__all__ = ["CONFIG_FILE", "DEFAULT_MODEL", "ConfigError", "TrainConfig", "load_config"]


class ConfigError(RoomscanError, ValueError):
    """A training configuration value or file is invalid; the message names the field and the problem."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        data: training dataset directory (roomscan format: ``images/``, ``annotations.json``, ``taxonomy.yaml``).
        model: hub id (``PekingU/rtdetr_v2_r18vd``, ``ustc-community/dfine_nano_coco``) or a local model directory.
        val_data: validation dataset directory; when ``None``, ``val_fraction`` of ``data`` is held out.
        val_fraction: share of ``data`` held out for validation when ``val_data`` is not given; ``0`` validates
            on the training images themselves (useful only to check that a model can fit).
        validate: evaluate AP on the validation set after every epoch and keep the best epoch as ``model/``.
            ``False`` skips validation (no set held out: ``val_data``, ``val_fraction`` and ``patience`` are
            ignored) and keeps the last epoch as the model, for callers that evaluate the model themselves
            (``roomscan active simulate``).
        scratch: random initialisation from the model's known architecture, no weight download.
        epochs: passes over the training set.
        batch_size: images per optimisation step and process: under ``torchrun --nproc-per-node N`` a step sees
            ``N * batch_size`` images (``lr`` and ``warmup_steps`` are not rescaled; an epoch has N times fewer
            steps).
        lr: AdamW learning rate of the detection head and encoder; the backbone gets ``lr * backbone_lr_mult``.
        backbone_lr_mult: learning-rate factor for the (usually pretrained) backbone.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        warmup_steps: linear learning-rate warm-up, then cosine decay to 1% over the run.
        clip_grad: maximum gradient norm (0 disables clipping).
        image_size: square side images are resized to.
        hflip: probability of a horizontal flip per training image.
        dropout: dropout rate in ``[0, 1)`` set on the model's transformer layers (its config's ``dropout``,
            ``attention_dropout`` and ``activation_dropout``, where the architecture has them) when above 0;
            0 keeps the architecture's or checkpoint's own. Train with dropout > 0 (e.g. 0.1) to use the model
            as an MC-dropout committee (``Detector.dropout_sampling``, ``roomscan active``).
        subset: fraction of the training set to use (fast iteration), reproducible by ``seed``.
        cache: keep decoded, resized images under ``cache_dir`` so later epochs and runs skip JPEG decoding.
        cache_dir: image cache location (default ``~/.roomscan/cache/images``).
        overfit_batch: train repeatedly on one batch (a sanity check: the loss must go toward zero).
        overfit_steps: optimisation steps in overfit-batch mode.
        patience: stop after this many epochs without a better validation mAP (0 disables early stopping;
            ignored when ``validate`` is ``False``: without validation no epoch is better than another).
        seed: seeds model init, data order, augmentation and the split.
        device: ``cpu``, ``cuda`` or ``auto``.
        amp: mixed precision on CUDA (fp16 autocast with a gradient scaler); ignored on CPU.
        num_workers: threads decoding images ahead of the model (0: decode inline).
        eval_batch_size: images per validation forward pass.
        print_every: print the training loss every this many steps.
        out: directory the run directory is created in.
        name: the run directory's name (default: model name, date and time).
    """

    data: str
    model: str = DEFAULT_MODEL
    val_data: str | None = None
    val_fraction: float = 0.1
    validate: bool = True
    scratch: bool = False
    epochs: int = 12
    batch_size: int = 8
    lr: float = 1e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    clip_grad: float = 0.1
    image_size: int = 640
    hflip: float = 0.5
    dropout: float = 0.0
    subset: float = 1.0
    cache: bool = True
    cache_dir: str | None = None
    overfit_batch: bool = False
    overfit_steps: int = 200
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 2
    eval_batch_size: int = 8
    print_every: int = 20
    out: str = "runs"
    name: str | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, where: str = "config") -> TrainConfig:
        """Build from a mapping; unknown keys and wrong types are errors naming the key."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping of config keys, got {type(raw).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(known)})")
        if "data" not in raw or raw["data"] in (None, ""):
            raise ConfigError(f"{where}: 'data' (the training dataset directory) is required")
        values = {}
        for key, value in raw.items():
            values[key] = _coerce(key, value, str(known[key].type), where)
        return cls(**values)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)
        return path


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """A config from an optional YAML file, with ``overrides`` (``None`` values ignored) applied on top.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or invalid values, named.
    """
    raw: dict[str, Any] = {}
    where = "flags"
    if path is not None:
        file = Path(path)
        where = str(file)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{file}: config file not found") from exc
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{file}: not a readable YAML config ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of config keys at the top level")
        raw.update(loaded)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(raw, where=where)


def _coerce(key: str, value: Any, type_name: str, where: str) -> Any:
    if value is None:
        if "None" in type_name:
            return None
        raise ConfigError(f"{where}: {key} must not be empty")
    base = type_name.replace(" | None", "")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    raise ConfigError(f"{where}: {key} must be a string, got {value!r}")


def _problems(c: TrainConfig) -> list[str]:
    checks = [
        (bool(c.data), "data: the training dataset directory is required"),
        (bool(c.model), "model: a hub id or a model directory is required"),
        (0.0 <= c.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {c.val_fraction}"),
        (isinstance(c.validate, bool), f"validate must be true or false, got {c.validate!r}"),
        (c.epochs >= 1, f"epochs must be at least 1, got {c.epochs}"),
        (c.batch_size >= 1, f"batch_size must be at least 1, got {c.batch_size}"),
        (c.eval_batch_size >= 1, f"eval_batch_size must be at least 1, got {c.eval_batch_size}"),
        (0.0 < c.lr < 1.0, f"lr must be in (0, 1), got {c.lr}"),
        (c.backbone_lr_mult >= 0.0, f"backbone_lr_mult must be >= 0, got {c.backbone_lr_mult}"),
        (c.weight_decay >= 0.0, f"weight_decay must be >= 0, got {c.weight_decay}"),
        (c.warmup_steps >= 0, f"warmup_steps must be >= 0, got {c.warmup_steps}"),
        (c.clip_grad >= 0.0, f"clip_grad must be >= 0, got {c.clip_grad}"),
        (32 <= c.image_size <= 2048 and c.image_size % 32 == 0,
         f"image_size must be a multiple of 32 between 32 and 2048, got {c.image_size}"),
        (0.0 <= c.hflip <= 1.0, f"hflip must be in [0, 1], got {c.hflip}"),
        (0.0 <= c.dropout < 1.0, f"dropout must be in [0, 1) (e.g. 0.1), got {c.dropout}"),
        (0.0 < c.subset <= 1.0, f"subset must be in (0, 1], got {c.subset}"),
        (c.overfit_steps >= 1, f"overfit_steps must be at least 1, got {c.overfit_steps}"),
        (c.patience >= 0, f"patience must be >= 0, got {c.patience}"),
        (c.seed >= 0, f"seed must be >= 0, got {c.seed}"),
        (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"),
         f"device must be auto, cpu or cuda, got {c.device!r}"),
        (c.num_workers >= 0, f"num_workers must be >= 0, got {c.num_workers}"),
        (c.print_every >= 1, f"print_every must be at least 1, got {c.print_every}"),
        (c.name is None or (c.name and "/" not in c.name and c.name not in (".", "..")),
         f"name must be a plain directory name, got {c.name!r}"),
    ]
    return [message for ok, message in checks if not ok]
