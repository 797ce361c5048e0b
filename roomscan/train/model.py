"""The detector being trained: hub checkpoints, offline (``--scratch``) architectures, the init-loss prior.

RT-DETRv2 and D-FINE share one path: ``AutoModelForObjectDetection`` + ``AutoImageProcessor``. ``--scratch``
builds a known architecture from its config (no download); otherwise the hub checkpoint is loaded with a new
classification head for the taxonomy (``ignore_mismatched_sizes``).

Example:
    >>> model, processor = build_model(TrainConfig(data="d", model="rtdetr_v2_r18vd", scratch=True), taxonomy)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roomscan.errors import ModelUnavailableError
from roomscan.taxonomy import Taxonomy
from roomscan.train.config import TrainConfig

ARCH_DIR = "arch"  # the model's config.json and processor config: enough to rebuild it on resume

__all__ = ["ARCH_DIR", "SCRATCH_ARCHITECTURES", "build_model", "expected_initial_vfl", "pixel_transform", "rebuild"]


def _r18vd_config(num_labels: int) -> Any:
    """RT-DETRv2 with a ResNet-18-vd backbone (``PekingU/rtdetr_v2_r18vd``'s architecture, about 20M parameters)."""
    from transformers import RTDetrV2Config

    backbone = {
        "model_type": "rt_detr_resnet", "embedding_size": 64, "hidden_sizes": [64, 128, 256, 512],
        "depths": [2, 2, 2, 2], "layer_type": "basic", "out_features": ["stage2", "stage3", "stage4"],
    }
    return RTDetrV2Config(  # type: ignore[call-arg]  # num_labels etc. go through PreTrainedConfig's kwargs
        backbone_config=backbone, encoder_in_channels=[128, 256, 512], hidden_expansion=0.5, decoder_layers=3,
        num_labels=num_labels, use_pretrained_backbone=False,
    )


def _dfine_nano_config(num_labels: int) -> Any:
    """D-FINE-N (``ustc-community/dfine_nano_coco``'s architecture: HGNetV2-B0 backbone, 2 feature levels, d 128)."""
    from transformers import DFineConfig

    config = DFineConfig(  # type: ignore[call-arg]
        num_labels=num_labels, num_feature_levels=2, encoder_ffn_dim=512, encode_proj_layers=[1], d_model=128,
        encoder_hidden_dim=128, decoder_ffn_dim=512, encoder_in_channels=[512, 1024], decoder_n_points=[6, 6],
        decoder_in_channels=[128, 128], feat_strides=[16, 32], depth_mult=0.5, decoder_layers=3,
        hidden_expansion=0.34,
    )
    bb: Any = config.backbone_config
    bb.hidden_sizes = [128, 256, 512, 1024]
    bb.stem_channels = [3, 16, 16]
    bb.stage_in_channels = [16, 64, 256, 512]
    bb.stage_mid_channels = [16, 32, 64, 128]
    bb.stage_out_channels = [64, 256, 512, 1024]
    bb.stage_num_blocks = [1, 1, 2, 1]
    bb.stage_downsample = [False, True, True, True]
    bb.stage_light_block = [False, False, True, True]
    bb.stage_kernel_size = [3, 3, 5, 5]
    bb.stage_numb_of_layers = [3, 3, 3, 3]
    bb.out_indices = [3, 4]
    bb.use_learnable_affine_block = True
    return config


# Architectures `--scratch` can build offline, by hub id or short name.
SCRATCH_ARCHITECTURES: dict[str, Callable[[int], Any]] = {
    "PekingU/rtdetr_v2_r18vd": _r18vd_config,
    "rtdetr_v2_r18vd": _r18vd_config,
    "ustc-community/dfine_nano_coco": _dfine_nano_config,
    "dfine_nano": _dfine_nano_config,
}


def build_model(config: TrainConfig, taxonomy: Taxonomy) -> tuple[Any, Any]:
    """The model (one label per amenity) and its image processor, at ``config.image_size``.

    Without ``scratch``, a hub checkpoint (or local directory) is loaded with a new classification head
    (``ignore_mismatched_sizes``). With ``scratch``, the architecture is built from its config with random
    weights and nothing is downloaded: a name in :data:`SCRATCH_ARCHITECTURES`, or a local model directory's
    ``config.json``.

    Raises:
        ModelUnavailableError: the checkpoint is not available (offline...), or ``--scratch`` names an
            architecture roomscan does not know.
    """
    import torch
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection, RTDetrImageProcessor

    labels = {"num_labels": len(taxonomy), "id2label": dict(enumerate(taxonomy.slugs)),
              "label2id": {s: i for i, s in enumerate(taxonomy.slugs)}}
    size = {"height": config.image_size, "width": config.image_size}
    local = Path(config.model).expanduser()
    torch.manual_seed(config.seed)
    if config.scratch:
        if config.model in SCRATCH_ARCHITECTURES:
            model_config = SCRATCH_ARCHITECTURES[config.model](len(taxonomy))
            processor = RTDetrImageProcessor(size=size)
        elif (local / "config.json").is_file():
            model_config = AutoConfig.from_pretrained(str(local))
            processor = (AutoImageProcessor.from_pretrained(str(local), size=size)
                         if (local / "preprocessor_config.json").is_file() else RTDetrImageProcessor(size=size))
        else:
            raise ModelUnavailableError(
                f"--scratch: unknown architecture {config.model!r}; use one of {', '.join(SCRATCH_ARCHITECTURES)} "
                "or a local model directory with a config.json"
            )
        for key, value in labels.items():
            setattr(model_config, key, value)
        for key in ("use_pretrained_backbone", "use_timm_backbone"):
            if hasattr(model_config, key):
                setattr(model_config, key, False)
        for key, value in _dropout(model_config, config.dropout).items():
            setattr(model_config, key, value)
        _check_queries(model_config, config.image_size)
        return AutoModelForObjectDetection.from_config(model_config), processor
    from roomscan.backends import resolve_model

    try:
        resolved = resolve_model(config.model)
    except ModelUnavailableError as exc:
        raise ModelUnavailableError(
            f"{exc} Or train from random initialisation without downloading anything: add --scratch "
            f"(architectures: {', '.join(SCRATCH_ARCHITECTURES)})."
        ) from exc
    dropout = _dropout(AutoConfig.from_pretrained(str(resolved.path)), config.dropout)
    model = AutoModelForObjectDetection.from_pretrained(str(resolved.path), ignore_mismatched_sizes=True, **labels,
                                                        **dropout)
    _check_queries(model.config, config.image_size)
    processor = AutoImageProcessor.from_pretrained(str(resolved.path), size=size)
    return model, processor


_DROPOUT_FIELDS = ("dropout", "attention_dropout", "activation_dropout")


def _dropout(model_config: Any, rate: float) -> dict[str, float]:
    """The config fields to set for ``TrainConfig.dropout``: every dropout rate the architecture reads (DETR,
    RT-DETR(v2) and D-FINE layers read these three), none when ``rate`` is 0 (the model's own stay)."""
    if rate <= 0:
        return {}
    return {key: float(rate) for key in _DROPOUT_FIELDS if hasattr(model_config, key)}


def _check_queries(model_config: Any, image_size: int) -> None:
    """The encoder proposes one anchor per feature-map cell and the decoder keeps the top ``num_queries``."""
    from roomscan.train.config import ConfigError

    strides = getattr(model_config, "feat_strides", None) or []
    anchors = sum((image_size // s) ** 2 for s in strides)
    queries = int(getattr(model_config, "num_queries", 0) or 0)
    if strides and anchors < queries:
        smallest = next(s for s in range(32, 4097, 32) if sum((s // t) ** 2 for t in strides) >= queries)
        raise ConfigError(
            f"image_size {image_size} gives {anchors} anchor positions at strides {list(strides)}, fewer than the "
            f"model's {queries} queries; use --image-size {smallest} or more"
        )


def rebuild(run_dir: Path) -> tuple[Any, Any]:
    """The run's architecture and processor from ``ARCH_DIR`` (weights come from the checkpoint)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

    arch = run_dir / ARCH_DIR
    model = AutoModelForObjectDetection.from_config(AutoConfig.from_pretrained(str(arch)))
    return model, AutoImageProcessor.from_pretrained(str(arch))


def pixel_transform(processor: Any) -> dict[str, Any]:
    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    if getattr(processor, "do_normalize", False):
        return {"rescale": rescale, "mean": list(processor.image_mean), "std": list(processor.image_std)}
    return {"rescale": rescale, "mean": None, "std": None}


def expected_initial_vfl(model: Any, n_images: int, n_boxes: int) -> tuple[float, float] | None:
    """Expected varifocal loss of one decoder output at initialisation, and the prior ``p`` it follows from.

    DETR-family heads initialise the class bias to ``b = -log((1 - p) / p)`` with ``p = 1 / (C + 1)``, so every
    query scores every class about ``p``. VFL weighs each negative (query, class) pair by ``alpha * p^gamma``
    and charges ``-log(1 - p)``; the ``Q*C - M`` negatives of a batch, summed and divided by its ``M`` boxes,
    give ``weight * (B*Q*C - M) * alpha * p^gamma * -log(1 - p) / M``. Matched pairs add little at init (their
    target is their IoU, near 0). ``p`` is read from the model's own class-head bias, not assumed.
    """
    import torch

    cfg = model.config
    if not getattr(cfg, "use_focal_loss", False) or n_boxes == 0:
        return None
    heads = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "class_embed" in n
             and m.out_features == cfg.num_labels and m.bias is not None]
    if not heads:
        return None
    p = float(torch.sigmoid(heads[-1].bias.detach().float().mean()))
    alpha, gamma = float(cfg.focal_loss_alpha), float(cfg.focal_loss_gamma)
    negatives = n_images * cfg.num_queries * cfg.num_labels - n_boxes
    per_layer = float(cfg.weight_loss_vfl) * negatives * alpha * p**gamma * -math.log(1 - p) / n_boxes
    return per_layer, p
