"""``roomscan mark`` and ``roomscan verify``: radioactive data from the command line.

``mark`` writes marked copies of a fraction of a dataset's or folder's photos and a marking key; ``verify`` tells
whether a classifier, or a detector trained by ``roomscan train``, was trained on marked photos (see
:mod:`roomscan.radioactive`). Both exit 0 when they ran
(``verify``'s verdict is in its output, not its status) and 2 on input they cannot use, with a message saying what
was wrong.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import JsonOpt
from roomscan.cli._console import console, err_console, progress
from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from roomscan.cli._mark_inputs import MarkInputs, Photo
    from roomscan.radioactive import MarkFilesResult, MarkingKey, MarkingNetwork, SkippedFile
    from roomscan.radioactive.classifier import LabelledFolder

__all__ = ["mark", "network_path_for", "parse_epsilon", "verify"]


def _refused(message: str) -> RoomscanError:
    """The package's own error, imported when needed: importing it loads scipy, which ``roomscan --help`` need not."""
    from roomscan.radioactive import RadioactiveError

    return RadioactiveError(message)

# The marking network --train-network makes: small enough to train in minutes on a laptop's CPU.
TRAIN_CLASSES = 8
TRAIN_IMAGES_PER_CLASS = 150


def parse_epsilon(text: str) -> float:
    """``"10/255"`` or ``"0.039"`` -> a fraction of full scale in (0, 1]."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise _refused(
            f"--epsilon {text!r} is not a number: give a fraction of full scale, e.g. 10/255 or 0.039"
        ) from None
    if not 0 < value <= 1 or math.isnan(value):
        raise _refused(
            f"--epsilon {text} is outside (0, 1]: it is a fraction of full scale, e.g. 10/255 for 10 levels of 255"
        )
    return value


def network_path_for(key: Path) -> Path:
    """Where ``--train-network`` saves the marking network, and where ``verify`` looks for it: beside the key."""
    return key.with_name(key.stem + ".network.pt")


def mark(
    dataset_or_dir: Path = typer.Argument(..., help="A roomscan dataset, a folder with one sub-folder per class, or (with --sets) any folder of photos."),
    fraction: float = typer.Option(..., "--fraction", help="Fraction of each class's photos to mark, in (0, 1] (at least one photo per class)."),
    key: Path = typer.Option(..., "--key", help="Where to save the marking key (.npz). Keep it private: verify needs it."),
    out: Path = typer.Option(..., "--out", help="Folder for the marked copies (same relative paths; for a dataset, OUT/images)."),
    psnr_floor: float = typer.Option(42.0, "--psnr", help="Lowest PSNR in dB a marked photo may have (42 is invisible)."),
    epsilon: str = typer.Option("10/255", "--epsilon", help="Largest change of any pixel channel: 10/255 or 0.039."),
    network: Path | None = typer.Option(None, "--network", help="Marking network file (from an earlier --train-network)."),
    train_network: bool = typer.Option(False, "--train-network", help="Train a marking network on generated pattern images and save it beside the key (KEY.network.pt)."),
    network_epochs: int = typer.Option(12, "--network-epochs", min=1, help="Epochs for --train-network."),
    seed: int = typer.Option(0, "--seed", help="Seeds the carriers, which photos are marked, and the marking."),
    steps: int = typer.Option(60, "--steps", min=1, help="Optimisation steps per photo (more: a stronger mark, slower)."),
    classes_from_folders: bool = typer.Option(False, "--classes-from-folders", help="Each sub-folder of DATASET_OR_DIR is a class (the default when it has only sub-folders)."),
    sets: int | None = typer.Option(None, "--sets", help="Unlabelled photos: deal them at random into N sets, one carrier each."),
    copy_unmarked: bool = typer.Option(False, "--copy-unmarked", help="Also copy the photos not marked into OUT, so OUT is a complete copy to publish."),
    overwrite_originals: bool = typer.Option(False, "--overwrite-originals", help="Allow OUT to be DATASET_OR_DIR: replace the chosen originals by their marked copies."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key (and its trained network): the old key's marks can then no longer be verified."),
    json_out: bool = JsonOpt,
) -> None:
    """Mark a fraction of photos imperceptibly, so a model trained on them can later be caught (`roomscan verify`).

    Each class (or set) gets a random direction in the marking network's feature space; each chosen photo is
    changed, within --epsilon per pixel and above --psnr, so its features move along its class's direction. The
    marked copies keep each file's format, size, JPEG quality and metadata; the originals are never touched unless
    --overwrite-originals. The key records the directions, the marking network's identity and every marked file
    with its PSNR.

    OUT receives only the marked copies unless --copy-unmarked, which copies the rest too (and, for a dataset,
    its annotations), so OUT is the set to publish in place of the originals.

    Rerunning with the same --seed marks the same photos the same way; an existing key is never replaced without
    --force.
    """
    from roomscan.cli._mark_inputs import choose, read_inputs

    source = dataset_or_dir
    eps = parse_epsilon(epsilon)
    if not 0 < fraction <= 1:
        raise _refused(f"--fraction must be in (0, 1] (e.g. 0.01 for 1%), got {fraction:g}")
    if not 0 < psnr_floor < 100:
        raise _refused(f"--psnr must be in (0, 100) dB (42 is invisible), got {psnr_floor:g}")
    if (network is None) == (not train_network):
        raise _refused(
            "give the marking network: --network FILE (one saved earlier) or --train-network to train one now"
        )
    _check_key_path(key, force=force, train_network=train_network)
    _check_out(source, out, overwrite_originals=overwrite_originals)

    inputs = read_inputs(source, sets=sets, classes_from_folders=classes_from_folders, seed=seed)
    chosen, undecodable = choose(inputs, fraction, seed)
    net, net_path = _marking_network(network, key, train=train_network, epochs=network_epochs, seed=seed, quiet=json_out)
    marking_key = _new_key(inputs.names, net, seed=seed, epsilon=eps, psnr_floor=psnr_floor)

    with progress() as bar:
        task = bar.add_task("Marking", total=len(chosen))
        result = _mark_files(chosen, inputs, out, marking_key, net, eps, psnr_floor, steps, seed,
                             overwrite_originals, lambda done, total: bar.update(task, completed=done))  # fmt: skip
    copied = _copy_unmarked(inputs, out, result) if copy_unmarked else 0
    marking_key.with_files(result.files).save(key)

    skipped = list(inputs.skipped) + undecodable + list(result.skipped)
    summary = _summary(inputs, result, skipped, key=key, network=net_path, out=out, copied=copied)
    if json_out:
        console.print_json(json.dumps(summary, allow_nan=False))
    else:
        _print_mark(summary, result, skipped)


def _check_key_path(key: Path, *, force: bool, train_network: bool) -> None:
    if key.is_dir():
        raise _refused(f"--key {key} is a folder; give a file name, e.g. {key / 'marking-key.npz'}")
    if not key.parent.is_dir():
        raise _refused(f"--key {key}: its folder {key.parent} does not exist; create it first")
    taken = [p for p in (key, network_path_for(key)) if p.exists() and (p == key or train_network)]
    if taken and not force:
        raise _refused(
            f"{taken[0]} already exists: it belongs to an earlier marking, whose marks only it can verify. "
            "Give another --key, or --force to replace it"
        )


def _check_out(source: Path, out: Path, *, overwrite_originals: bool) -> None:
    if out.exists() and not out.is_dir():
        raise _refused(f"--out {out} is a file; give a folder for the marked copies")
    src, dst = source.resolve(), out.resolve()
    if overwrite_originals:
        return
    if dst == src:
        raise _refused(
            f"--out {out} is the photos' own folder: marking would replace the originals. Choose another folder, "
            "or pass --overwrite-originals to replace them on purpose"
        )
    if src in dst.parents:
        raise _refused(
            f"--out {out} is inside {source}: the marked copies would be taken for originals next time. "
            "Choose a folder outside it"
        )


def _marking_network(
    path: Path | None, key: Path, *, train: bool, epochs: int, seed: int, quiet: bool
) -> tuple[MarkingNetwork, Path]:
    from roomscan.radioactive import NetworkConfig, load_network, make_pattern_images, save_network, train_marking_network

    if path is not None:
        return load_network(path), path
    config = NetworkConfig(widths=(16, 32, 64), image_size=48)
    data = make_pattern_images(TRAIN_IMAGES_PER_CLASS, n_classes=TRAIN_CLASSES, size=config.image_size, seed=seed)
    with progress() as bar:
        task = bar.add_task("Training the marking network", total=epochs)
        trained = train_marking_network(
            data.images, data.labels, config, epochs=epochs, seed=seed,
            on_progress=lambda epoch, _n, _loss, _acc: bar.update(task, completed=epoch),
        )  # fmt: skip
    if not quiet:
        err_console.print(
            f"marking network trained: {trained.accuracies[-1]:.0%} training accuracy on "
            f"{len(data.images)} generated images", highlight=False,
        )  # fmt: skip
    saved = save_network(trained.network, network_path_for(key))
    return trained.network, saved


def _new_key(names: tuple[str, ...], net: MarkingNetwork, *, seed: int, epsilon: float, psnr_floor: float) -> MarkingKey:
    from roomscan.radioactive import MarkingKey, network_identity, random_carriers

    d = net.feature_dim
    carriers = random_carriers(len(names), d, seed, orthogonal=len(names) <= d)  # [n_classes, d]
    return MarkingKey.new(carriers, names, network_identity(net), seed=seed, epsilon=epsilon, psnr_floor=psnr_floor)


def _mark_files(
    chosen: list[Photo],
    inputs: MarkInputs,
    out: Path,
    key: MarkingKey,
    net: MarkingNetwork,
    epsilon: float,
    psnr_floor: float,
    steps: int,
    seed: int,
    overwrite_originals: bool,
    on_progress: Any,
) -> MarkFilesResult:
    from roomscan.cli._mark_inputs import images_dir_of
    from roomscan.radioactive import mark_files

    return mark_files(
        [p.path for p in chosen], images_dir_of(out, inputs), [p.name for p in chosen], key, net,
        root=inputs.root, overwrite_originals=overwrite_originals, epsilon=epsilon, psnr_floor=psnr_floor,
        steps=steps, seed=seed, on_progress=on_progress,
    )  # fmt: skip


def _copy_unmarked(inputs: MarkInputs, out: Path, result: MarkFilesResult) -> int:
    """Copy every photo not marked to its place under ``out`` (a dataset also gets its annotations); the count."""
    from roomscan.cli._mark_inputs import images_dir_of

    marked = {Path(f.source).resolve() for f in result.files}
    target_root = images_dir_of(out, inputs)
    copied = 0
    everything = (
        [inputs.dataset.path(im) for im in inputs.dataset.images] if inputs.dataset is not None
        else [p for p in inputs.root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    )  # fmt: skip
    for path in everything:
        if path.resolve() in marked or not path.is_file():
            continue
        target = target_root / path.resolve().relative_to(inputs.root.resolve())
        if target.resolve() == path.resolve():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied += 1
    if inputs.dataset is not None:
        from roomscan.data.dataset import ANNOTATIONS_FILE, TAXONOMY_FILE
        from roomscan.data.formats import coco

        ds = inputs.dataset
        inputs.dataset.taxonomy.save(out / TAXONOMY_FILE)
        coco.write(type(ds)(target_root, ds.taxonomy, ds.images, ds.annotations), out / ANNOTATIONS_FILE)
    return copied


def _summary(
    inputs: MarkInputs,
    result: MarkFilesResult,
    skipped: list[SkippedFile],
    *,
    key: Path,
    network: Path,
    out: Path,
    copied: int,
) -> dict[str, Any]:
    psnrs = [f.psnr for f in result.files if math.isfinite(f.psnr)]
    per_class = {name: sum(1 for p in inputs.photos if p.name == name) for name in inputs.names}
    return {
        "key": str(key),
        "network": str(network),
        "out": str(out),
        "photos": len(inputs.photos),
        "classes": {n: {"photos": per_class[n], "marked": sum(1 for f in result.files if f.name == n)} for n in inputs.names},
        "marked": len(result.files),
        "copied_unmarked": copied,
        "mean_psnr": round(sum(psnrs) / len(psnrs), 3) if psnrs else None,
        "min_psnr": round(min(psnrs), 3) if psnrs else None,
        "files": [
            {"source": f.source, "output": f.output, "class": f.name,
             "psnr": round(f.psnr, 3) if math.isfinite(f.psnr) else None, "linf_255": round(f.linf * 255, 2)}
            for f in result.files
        ],  # fmt: skip
        "skipped": [{"source": s.source, "reason": s.reason} for s in skipped],
    }


def _print_mark(summary: dict[str, Any], result: MarkFilesResult, skipped: list[SkippedFile]) -> None:
    table = Table(box=box.SIMPLE_HEAD, title=f"{summary['marked']} photo(s) marked")
    table.add_column("photo", overflow="fold")
    table.add_column("class")
    table.add_column("PSNR dB", justify="right")
    table.add_column("L-inf /255", justify="right")
    for f in result.files:
        table.add_row(escape(f.output), escape(f.name), f"{f.psnr:.2f}", f"{f.linf * 255:.0f}")
    console.print(table)
    if summary["mean_psnr"] is not None:
        console.print(f"PSNR: mean {summary['mean_psnr']:.2f} dB, min {summary['min_psnr']:.2f} dB", highlight=False)
    counts = ", ".join(f"{escape(n)} {c['marked']}/{c['photos']}" for n, c in summary["classes"].items())
    console.print(f"marked per class: {counts}", highlight=False)
    if summary["copied_unmarked"]:
        console.print(f"copied {summary['copied_unmarked']} unmarked file(s) into {escape(summary['out'])}", highlight=False)
    if skipped:
        err_console.print(f"[yellow]{len(skipped)} file(s) skipped:[/]", highlight=False)
        for s in skipped:
            err_console.print(f"  {escape(s.source)}: {escape(s.reason)}", highlight=False, soft_wrap=True)
    console.print(
        f"key saved to {escape(summary['key'])} (marking network {escape(summary['network'])}); keep both private "
        "and keep them: `roomscan verify` needs them", highlight=False, soft_wrap=True,
    )  # fmt: skip


def verify(
    model: Path = typer.Option(..., "--model", help="The model to test: a classifier file (saved by roomscan's save_classifier), or a detector: a `roomscan train` run directory or its model/ directory."),
    key: Path = typer.Option(..., "--key", help="The marking key written by `roomscan mark`."),
    data: Path = typer.Option(..., "--data", metavar="HELD_OUT_DIR", help="Unmarked held-out photos: one sub-folder per class (the key's classes), or a roomscan dataset (a photo's class is the one whose boxes cover most of it, as in `roomscan mark`; with one box per photo, that box's label)."),
    network: Path | None = typer.Option(None, "--network", help="The marking network (default: KEY.network.pt beside the key)."),
    marked: Path | None = typer.Option(None, "--marked", help="Black-box test too: marked copies (the OUT of `roomscan mark`)..."),
    originals: Path | None = typer.Option(None, "--originals", help="...and their originals, at the same relative paths."),
    reference: Path | None = typer.Option(None, "--reference", help="Black-box: a classifier of the same classes known NOT to have seen the marked photos (e.g. one you trained on other photos); each pair's loss gap is compared with its gap, so only a model that fits the marks better than an innocent one is flagged."),
    alpha: float = typer.Option(1e-3, "--alpha", help="False-positive rate accepted for a 'trained on the marked photos' verdict."),
    json_out: bool = JsonOpt,
) -> None:
    """Test whether a classifier or a detector was trained on photos marked by `roomscan mark`.

    White-box: the model's feature space is aligned to the marking network's on the held-out photos, its class
    weights are mapped through that alignment, and each class's cosine with its carrier gets an exact p-value;
    Fisher's method combines them. A detector (RT-DETRv2, D-FINE) is read through its decoder: per photo, the
    features of its highest-scoring query, and the class head that scores the final boxes. With --marked and
    --originals (classifiers only), black-box too: does the model fit the marked copies better than their
    originals (Wilcoxon signed-rank test on the loss gap)?

    The exit status is 0 whenever the test ran, whatever the verdict (read it in the output, or "detected" in
    --json); 2 when an input cannot be used.
    """
    from roomscan.radioactive import MarkingKey, load_network, network_identity
    from roomscan.radioactive.classifier import load_classifier
    from roomscan.radioactive.detector import load_detector
    from roomscan.radioactive.verify import verify_whitebox

    if not 0 < alpha < 1:
        raise _refused(f"--alpha must be in (0, 1), e.g. 1e-3, got {alpha:g}")
    if (marked is None) != (originals is None):
        raise _refused("the black-box test needs both --marked DIR and --originals DIR (or neither)")
    if reference is not None and marked is None:
        raise _refused("--reference is for the black-box test: give --marked DIR and --originals DIR with it")
    marking_key = MarkingKey.load(key)
    net_path = network if network is not None else network_path_for(key)
    if not net_path.is_file():
        raise _refused(
            f"{net_path}: no marking network there; give --network, the file the key was made with"
        )
    net = load_network(net_path)
    marking_key.check_network(network_identity(net))
    if model.is_dir():
        if marked is not None:
            raise _refused(
                f"{model} is a detector: the black-box test compares a classifier's losses on marked copies and "
                "originals; drop --marked, --originals and --reference (the white-box test applies)"
            )
        classifier: Any = load_detector(model)
    else:
        classifier = load_classifier(model)
    held = _held_out(data)
    unknown = [c for c in held.class_names if c not in marking_key.names]
    if unknown:
        raise _refused(
            f"{data}: classes {unknown} have no carrier in the key (it knows {list(marking_key.names)}); "
            "is this the right key? Give held-out photos of the marked classes only"
        )
    skipped = list(held.skipped)
    with err_console.status("Verifying (white-box)…"):
        whitebox = verify_whitebox(classifier, marking_key, net, list(held.images), alpha=alpha)
    blackbox = None
    if marked is not None and originals is not None:
        pairs, labels, bad = _pairs(marked, originals, marking_key, classifier.class_names)
        skipped += bad
        from roomscan.radioactive.verify import verify_blackbox

        innocent = None
        if reference is not None:
            innocent = load_classifier(reference)
            if tuple(innocent.class_names) != tuple(classifier.class_names):
                raise _refused(
                    f"--reference {reference} has classes {list(innocent.class_names)} but the model has "
                    f"{list(classifier.class_names)}: the reference must be a model of the same classes, in the same "
                    "order"
                )
        with err_console.status("Verifying (black-box)…"):
            blackbox = verify_blackbox(classifier, [m for m, _ in pairs], [o for _, o in pairs], labels,
                                       reference=innocent, alpha=alpha)  # fmt: skip
    if json_out:
        payload = {
            "whitebox": whitebox.to_dict(),
            "blackbox": None if blackbox is None else blackbox.to_dict(),
            "skipped": [{"source": s.source, "reason": s.reason} for s in skipped],
        }
        console.print_json(json.dumps(payload, allow_nan=False))
        return
    _print_verify(whitebox, blackbox, skipped)


def _held_out(data: Path) -> LabelledFolder:
    """Held-out photos: a class-per-folder tree, or a roomscan dataset (see ``load_labelled_dataset``)."""
    from roomscan.data.dataset import ANNOTATIONS_FILE
    from roomscan.radioactive.classifier import load_labelled_folder
    from roomscan.radioactive.detector import load_labelled_dataset

    return load_labelled_dataset(data) if (data / ANNOTATIONS_FILE).is_file() else load_labelled_folder(data)


def _pairs(
    marked: Path, originals: Path, key: MarkingKey, model_classes: tuple[str, ...]
) -> tuple[list[tuple[Any, Any]], list[str], list[SkippedFile]]:
    """(marked, original) image pairs matched by relative path, each with its class; the pairs that cannot be used."""
    import hashlib

    from roomscan.detection.image import IMAGE_SUFFIXES, load_image
    from roomscan.errors import ImageError
    from roomscan.radioactive import SkippedFile

    for folder, flag in ((marked, "--marked"), (originals, "--originals")):
        if not folder.is_dir():
            raise _refused(f"{flag} {folder}: no such folder; check the path")
    by_hash = {f.sha256_marked: f.name for f in key.files}
    pairs, labels, bad = [], [], []
    files = sorted(p for p in marked.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files:
        rel = path.relative_to(marked)
        original = originals / rel
        try:
            marked_image = load_image(path)
        except ImageError as exc:
            bad.append(SkippedFile(str(path), str(exc)))
            continue
        # The key knows each marked file by its bytes; copies made with --copy-unmarked are not in it: not pairs.
        name = by_hash.get(hashlib.sha256(marked_image.data).hexdigest())
        if name is None:
            continue
        if name not in model_classes:
            bad.append(SkippedFile(str(path), f"marked for {name!r}, which is not one of the model's classes"))
            continue
        if not original.is_file():
            bad.append(SkippedFile(str(path), f"no original at {original}"))
            continue
        try:
            original_image = load_image(original)
        except ImageError as exc:
            bad.append(SkippedFile(str(original), str(exc)))
            continue
        pairs.append((marked_image.image, original_image.image))
        labels.append(name)
    if not pairs:
        raise _refused(
            f"{marked}: no marked photo of this key with a readable original in {originals}"
            + (f" ({len(bad)} skipped, e.g. {bad[0].source}: {bad[0].reason})" if bad else "")
        )
    return pairs, labels, bad


def _print_verify(whitebox: Any, blackbox: Any, skipped: list[SkippedFile]) -> None:
    table = Table(box=box.SIMPLE_HEAD, title="White-box test")
    table.add_column("class")
    table.add_column("cosine", justify="right")
    table.add_column("p-value", justify="right")
    for c in whitebox.classes:
        table.add_row(escape(c.name), f"{c.cosine:+.3f}", f"{c.p_value:.3g}")
    console.print(table)
    console.print(
        f"combined p-value {whitebox.p_value:.3g} over {len(whitebox.classes)} class(es) (Fisher), d={whitebox.dim}, "
        f"alignment on {whitebox.n_images} held-out photos (R² {whitebox.alignment_r2:.2f})", highlight=False,
    )  # fmt: skip
    for note in whitebox.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"[bold]white-box verdict:[/] {escape(whitebox.verdict.text)}", highlight=False, soft_wrap=True)
    if blackbox is not None:
        console.print(
            f"black-box: {blackbox.n_pairs} marked/original pairs, mean loss gap {blackbox.mean_gap:+.4f} nats "
            f"(original - marked), p-value {blackbox.p_value:.3g} (Wilcoxon)", highlight=False,
        )  # fmt: skip
        for note in blackbox.notes:
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        console.print(f"[bold]black-box verdict:[/] {escape(blackbox.verdict.text)}", highlight=False, soft_wrap=True)
    if skipped:
        err_console.print(f"[yellow]{len(skipped)} file(s) skipped:[/]", highlight=False)
        for s in skipped:
            err_console.print(f"  {escape(s.source)}: {escape(s.reason)}", highlight=False, soft_wrap=True)
