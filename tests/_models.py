"""Tiny models of the real architectures, built offline for tests and benchmarks, and synthetic photos.

Each builder makes a model from a small config with random (re-initialised) weights and saves it with
``save_pretrained`` next to a *real* processor, so the backends load it through exactly the code path they use for
downloaded checkpoints. No network access: the CLIP tokenizer is built from a synthetic byte-level BPE vocabulary.

Usage::

    from _models import build_tiny_detr, build_tiny_owlv2, build_tiny_rtdetr, tiny_taxonomy
    owl_dir = build_tiny_owlv2(tmp_path / "owl")
    detr_dir = build_tiny_rtdetr(tmp_path / "detr", tiny_taxonomy())  # sigmoid (focal-loss) scores
    softmax_dir = build_tiny_detr(tmp_path / "softmax")  # the original DETR: softmax with a no-object class
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from roomscan.taxonomy import Amenity, Taxonomy, default_taxonomy

__all__ = [
    "build_clip_tokenizer",
    "build_owlv2_model",
    "build_tiny_detr",
    "build_tiny_owlv2",
    "build_tiny_rtdetr",
    "make_image",
    "reinit_weights",
    "room_scene",
    "tiny_owlv2_config",
    "tiny_taxonomy",
]


def tiny_taxonomy() -> Taxonomy:
    """Three amenities with thresholds low enough that random tiny models produce detections."""
    return Taxonomy(
        (
            Amenity("bed", "Bed", group="bedroom", prompts=("a bed", "a made bed"), threshold=0.05),
            Amenity("oven", "Oven", group="kitchen", prompts=("an oven",), threshold=0.1),
            Amenity(
                "sink", "Sink", group="bathroom", prompts=("a sink", "a washbasin", "a basin"), threshold=0.3
            ),
        ),
        source="tiny",
    )


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table, in CLIP's order (``!`` is id 0)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _words(extra: Iterable[str]) -> list[str]:
    prompts = [p for a in default_taxonomy() for p in a.prompts] + list(extra)
    seen: dict[str, None] = {}
    for prompt in prompts:
        for word in prompt.lower().replace("-", " ").split():
            seen.setdefault(word, None)
    return list(seen)


def build_clip_tokenizer(
    path: str | Path | None = None,
    *,
    vocab_size: int | None = None,
    model_max_length: int = 16,
    words: Iterable[str] = (),
):
    """A CLIP tokenizer (the one OWLv2 uses) from a synthetic vocabulary, without network access.

    The vocabulary holds the 512 byte symbols CLIP starts from, whole-word merges for every word of the default
    taxonomy's prompts (plus ``words``) so prompts stay within ``model_max_length`` tokens, optional filler
    tokens up to ``vocab_size``, and the start/end tokens last: OWLv2 pools the text at the highest token id, and
    pads with ``!`` (id 0), which marks padded queries.

    Args:
        path: when given, the tokenizer is saved there too.
        vocab_size: pad the vocabulary to this size (the real OWLv2 has 49408).
        model_max_length: the text length the processor pads to (OWLv2: 16).
        words: further words to merge into single tokens.
    """
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _words(words):
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if merged not in vocab:
                merges.append((current, piece))
                vocab[merged] = len(vocab)
            current = merged
    specials = ["<|startoftext|>", "<|endoftext|>"]
    if vocab_size is not None:
        if vocab_size < len(vocab) + len(specials):
            raise ValueError(
                f"vocab_size {vocab_size} is below the {len(vocab) + 2} tokens the builder needs"
            )
        for i in range(vocab_size - len(vocab) - len(specials)):
            vocab[f"<|filler{i}|>"] = len(vocab)
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        pad_token="!",
        model_max_length=model_max_length,
    )
    if path is not None:
        tokenizer.save_pretrained(str(path))
    return tokenizer


def reinit_weights(model, std: float = 0.2, seed: int = 0) -> None:
    """Normal-initialise every floating parameter and reset BatchNorm statistics.

    ``from_config`` initialisation leaves tiny detectors with near-constant outputs (zero biases, BatchNorm at
    identity, heads initialised to a prior): every query then scores the same and tests assert nothing. Random
    normal weights make outputs depend on the input.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.is_floating_point():
                if name.endswith("weight") and ("norm" in name or "bn" in name or "batchnorm" in name):
                    param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
                else:
                    param.copy_(std * torch.randn(param.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)


def tiny_owlv2_config(*, image_size: int = 64, patch_size: int = 8, vocab_size: int = 1024):
    """An ``Owlv2Config`` a few hundred kB in size: 1 text and 2 vision layers, width 32."""
    from transformers import Owlv2Config

    text = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "pad_token_id": 0,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": patch_size,
    }
    # The class head compares projected text embeddings with vision features mapped to the text width.
    return Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)


def build_owlv2_model(config, *, seed: int = 0, std: float | None = None):
    """An ``Owlv2ForObjectDetection`` with random weights, in eval mode."""
    import torch
    from transformers import Owlv2ForObjectDetection

    torch.manual_seed(seed)
    model = Owlv2ForObjectDetection(config).eval()
    if std is not None:
        reinit_weights(model, std=std, seed=seed)
    return model


def build_tiny_owlv2(path: str | Path, *, image_size: int = 64, patch_size: int = 8, seed: int = 0) -> Path:
    """Save a tiny OWLv2 (model, image processor, tokenizer) to ``path``; returns the directory.

    ``Owlv2Processor.from_pretrained(path)`` and ``Owlv2ForObjectDetection.from_pretrained(path)`` both work on
    the result, as on a downloaded checkpoint.
    """
    from transformers import Owlv2ImageProcessor, Owlv2Processor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_clip_tokenizer()
    config = tiny_owlv2_config(image_size=image_size, patch_size=patch_size, vocab_size=len(tokenizer))
    model = build_owlv2_model(config, seed=seed, std=0.2)
    model.save_pretrained(str(path))
    image_processor = Owlv2ImageProcessor(size={"height": image_size, "width": image_size})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(path))
    return path


def build_tiny_rtdetr(
    path: str | Path,
    taxonomy: Taxonomy | None = None,
    *,
    image_size: int = 64,
    seed: int = 0,
    dropout: float = 0.0,
) -> Path:
    """Save a tiny fine-tuned-style RT-DETRv2 directory (weights, configs, ``taxonomy.yaml``) to ``path``.

    The model has one label per amenity of ``taxonomy`` (default :func:`tiny_taxonomy`), a 4-stage ResNet
    backbone of widths 8-32, ``d_model`` 32 and 10 queries, and is written with
    :func:`roomscan.backends.detr.save_model_dir`, the same helper training uses. ``dropout`` sets the config's
    ``dropout``, ``attention_dropout`` and ``activation_dropout`` (for MC-dropout tests; 0 like the released
    checkpoints' inference).
    """
    import torch
    from transformers import RTDetrImageProcessor, RTDetrV2Config, RTDetrV2ForObjectDetection

    from roomscan.backends.detr import save_model_dir

    taxonomy = taxonomy or tiny_taxonomy()
    backbone = {
        "model_type": "rt_detr_resnet",
        "embedding_size": 8,
        "hidden_sizes": [8, 16, 24, 32],
        "depths": [1, 1, 1, 1],
        "layer_type": "basic",
        "out_features": ["stage2", "stage3", "stage4"],
    }
    config = RTDetrV2Config(
        backbone_config=backbone,
        encoder_in_channels=[16, 24, 32],
        feat_strides=[8, 16, 32],
        encoder_hidden_dim=32,
        encoder_ffn_dim=64,
        encoder_layers=1,
        encode_proj_layers=[2],
        d_model=32,
        decoder_in_channels=[32, 32, 32],
        decoder_ffn_dim=64,
        decoder_layers=2,  # 1 trips a weight-tying check in transformers 5
        decoder_attention_heads=2,
        encoder_attention_heads=2,
        decoder_n_points=2,
        num_queries=10,
        num_denoising=0,
        num_labels=len(taxonomy),
        anchor_image_size=None,
        use_pretrained_backbone=False,
        dropout=dropout,
        attention_dropout=dropout,
        activation_dropout=dropout,
    )
    torch.manual_seed(seed)
    model = RTDetrV2ForObjectDetection(config).eval()
    reinit_weights(model, std=0.3, seed=seed)
    processor = RTDetrImageProcessor(size={"height": image_size, "width": image_size})
    return save_model_dir(model, processor, taxonomy, path)


def build_tiny_detr(path: str | Path, taxonomy: Taxonomy | None = None, *, seed: int = 0) -> Path:
    """Save a tiny fine-tuned-style DETR directory (the original DETR: softmax scores with a no-object class).

    A 4-stage ResNet backbone of widths 8-32 (transformers' own, not timm's), ``d_model`` 32, one encoder and one
    decoder layer, 10 queries, and ``DetrImageProcessor`` resizing the shortest edge to 64 (longest at most 96);
    written with :func:`roomscan.backends.detr.save_model_dir`.
    """
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor

    from roomscan.backends.detr import save_model_dir

    taxonomy = taxonomy or tiny_taxonomy()
    backbone = {
        "model_type": "resnet",
        "embedding_size": 8,
        "hidden_sizes": [8, 16, 24, 32],
        "depths": [1, 1, 1, 1],
        "layer_type": "basic",
        "out_features": ["stage4"],
    }
    config = DetrConfig(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=10,
        num_labels=len(taxonomy),
    )
    torch.manual_seed(seed)
    model = DetrForObjectDetection(config).eval()
    reinit_weights(model, std=0.3, seed=seed)
    processor = DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    return save_model_dir(model, processor, taxonomy, path)


def make_image(size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A photo-like RGB image ``(width, height)``: a colour gradient, a few rectangles ("furniture"), noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x / max(width, 1) * 200, y / max(height, 1) * 200, np.full_like(x, 90.0)], axis=-1)
    for _ in range(3):
        x0, y0 = rng.integers(0, max(width, 1)), rng.integers(0, max(height, 1))
        arr[y0 : y0 + height // 3 + 1, x0 : x0 + width // 3 + 1] = rng.integers(0, 255, 3)
    arr += rng.normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype("uint8"))


def room_scene(seed: int, size: tuple[int, int] = (320, 240), light: float = 1.0) -> Image.Image:
    """A generated room: wall over floor, furniture blocks, a little noise; ``light`` scales the brightness."""
    rng = np.random.default_rng(seed)
    w, h = size
    wall, floor = rng.integers(120, 240, 3), rng.integers(40, 160, 3)
    horizon = int(h * rng.uniform(0.55, 0.75))
    arr = np.where(np.arange(h)[:, None, None] < horizon, wall, floor)
    arr = np.broadcast_to(arr, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(h // 5, h - 20))
        box = [x0, y0, x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(15, h // 2))]
        draw.rectangle(box, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    image = image.filter(ImageFilter.GaussianBlur(1))
    if light != 1.0:
        image = Image.fromarray(np.clip(np.asarray(image, np.float32) * light, 0, 255).astype(np.uint8))
    return image
