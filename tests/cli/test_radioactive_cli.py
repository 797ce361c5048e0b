"""``roomscan mark`` and ``roomscan verify`` on tiny generated photos, a tiny marking network and a tiny classifier."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from cli_helpers import run  # noqa: E402

from roomscan.radioactive import MarkingKey, MarkingNetwork, NetworkConfig, make_pattern_images, save_network  # noqa: E402

SIZE = 24
PER_CLASS = 6
FAST = ("--steps", "4")


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    net = MarkingNetwork(NetworkConfig(widths=(4, 8), image_size=16)).eval()
    return save_network(net, tmp_path_factory.mktemp("net") / "marker.pt")


def write_classes(root: Path, per_class: int = PER_CLASS, seed: int = 0, n_classes: int = 2) -> Path:
    data = make_pattern_images(per_class, n_classes=n_classes, size=SIZE, seed=seed)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        folder = root / data.names[label]
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            image.save(folder / f"{i}.jpg", quality=92)
        else:
            image.save(folder / f"{i}.png")
    return root


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def mark(capsys, src: Path, out: Path, key: Path, network: Path, *extra: str) -> tuple[int, dict | None, str]:
    code, stdout, err = run(capsys, "mark", str(src), "--key", str(key), "--out", str(out), "--network", str(network),
                            *FAST, "--json", *extra)  # fmt: skip
    return code, (json.loads(stdout) if code == 0 else None), err


@pytest.mark.parametrize("fraction", [0.34, 1.0])
def test_mark_writes_the_fraction_of_each_class_and_a_key_naming_them(capsys, tmp_path, network_file, fraction):
    src = write_classes(tmp_path / "photos")
    before = digests(src)
    key = tmp_path / "key.npz"
    code, summary, err = mark(capsys, src, tmp_path / "out", key, network_file, "--fraction", str(fraction))
    assert code == 0, err
    want = max(1, round(fraction * PER_CLASS))
    assert {n: c["marked"] for n, c in summary["classes"].items()} == {"circle": want, "square": want}
    assert digests(src) == before  # originals untouched
    loaded = MarkingKey.load(key)
    assert loaded.names == ("circle", "square")
    assert sorted(f.output for f in loaded.files) == sorted(f["output"] for f in summary["files"])
    written = sorted(str(p) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(f["output"] for f in summary["files"])  # only the marked copies without --copy-unmarked
    for f in summary["files"]:
        assert f["psnr"] >= 42.0 and f["linf_255"] <= 10
        assert Path(f["output"]).suffix == Path(f["source"]).suffix
    assert summary["min_psnr"] >= 42.0


def test_copy_unmarked_makes_out_a_complete_copy(capsys, tmp_path, network_file):
    src = write_classes(tmp_path / "photos")
    code, summary, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file,
                              "--fraction", "0.2", "--copy-unmarked")  # fmt: skip
    assert code == 0, err
    out_files, src_files = digests(tmp_path / "out"), digests(src)
    assert set(out_files) == set(src_files)
    changed = {name for name in src_files if out_files[name] != src_files[name]}
    assert changed == {str(Path(f["source"]).relative_to(src)) for f in summary["files"]}


def test_same_seed_marks_the_same_photos_and_an_existing_key_is_kept_unless_forced(capsys, tmp_path, network_file):
    src = write_classes(tmp_path / "photos")
    key = tmp_path / "key.npz"
    code, first, _ = mark(capsys, src, tmp_path / "out", key, network_file, "--fraction", "0.5", "--seed", "3")
    assert code == 0
    saved = key.read_bytes()
    code, _, err = mark(capsys, src, tmp_path / "out", key, network_file, "--fraction", "0.5", "--seed", "3")
    assert code == 2 and "already exists" in err and "--force" in err
    assert key.read_bytes() == saved
    code, again, _ = mark(capsys, src, tmp_path / "out", key, network_file, "--fraction", "0.5", "--seed", "3", "--force")
    assert code == 0
    assert [f["source"] for f in again["files"]] == [f["source"] for f in first["files"]]


def test_unlabelled_photos_are_dealt_into_sets(capsys, tmp_path, network_file):
    src = tmp_path / "flat"
    src.mkdir()
    for image_file in write_classes(tmp_path / "classes").rglob("*.png"):
        (src / image_file.name).write_bytes(image_file.read_bytes())
    code, _, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file, "--fraction", "0.5")
    assert code == 2 and "--sets" in err
    code, summary, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file, "--fraction", "0.5", "--sets", "2")
    assert code == 0, err
    assert set(summary["classes"]) == {"set-1", "set-2"}
    assert MarkingKey.load(tmp_path / "k.npz").names == ("set-1", "set-2")


def test_unreadable_photos_are_skipped_and_named(capsys, tmp_path, network_file):
    src = write_classes(tmp_path / "photos")
    broken = src / "circle" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not the rest of a JPEG")
    jpeg = next(src.glob("square/*.jpg")).read_bytes()
    truncated = src / "square" / "truncated.jpg"  # a sound header: only decoding finds the problem
    truncated.write_bytes(jpeg[: len(jpeg) // 3])
    (src / "circle" / "notes.txt").write_text("not a photo")
    code, summary, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file, "--fraction", "1")
    assert code == 0, err
    skipped = {s["source"]: s["reason"] for s in summary["skipped"]}
    assert {str(broken), str(truncated), str(src / "circle" / "notes.txt")} <= set(skipped)
    assert {n: c["marked"] for n, c in summary["classes"].items()} == {"circle": PER_CLASS, "square": PER_CLASS}


def test_a_folder_of_nothing_but_unreadable_photos_is_refused(capsys, tmp_path, network_file):
    src = tmp_path / "photos" / "kitchen"
    src.mkdir(parents=True)
    (src / "a.jpg").write_bytes(b"garbage")
    code, _, err = mark(capsys, src.parent, tmp_path / "out", tmp_path / "k.npz", network_file, "--fraction", "1")
    assert code == 2 and "no photo that can be marked" in err and "a.jpg" in err
    assert not (tmp_path / "k.npz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fraction", "0"), "--fraction must be in (0, 1]"),
        (("--fraction", "1.5"), "--fraction must be in (0, 1]"),
        (("--fraction", "0.5", "--psnr", "0"), "--psnr must be in (0, 100)"),
        (("--fraction", "0.5", "--psnr", "-3"), "--psnr must be in (0, 100)"),
        (("--fraction", "0.5", "--epsilon", "ten"), "is not a number"),
        (("--fraction", "0.5", "--epsilon", "10"), "outside (0, 1]"),
        (("--fraction", "0.5", "--epsilon", "10/0"), "is not a number"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(capsys, tmp_path, network_file, args, message):
    src = write_classes(tmp_path / "photos", per_class=2)
    code, _, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file, *args)
    assert code == 2 and message in " ".join(err.split())
    assert not (tmp_path / "out").exists() and not (tmp_path / "k.npz").exists()


@pytest.mark.parametrize("epsilon", ["10/255", "0.0392"])
def test_epsilon_is_a_fraction_or_a_ratio(capsys, tmp_path, network_file, epsilon):
    src = write_classes(tmp_path / "photos", per_class=2)
    code, _, err = mark(capsys, src, tmp_path / "out", tmp_path / "k.npz", network_file, "--fraction", "1", "--epsilon", epsilon)
    assert code == 0, err
    assert MarkingKey.load(tmp_path / "k.npz").epsilon == pytest.approx(10 / 255, abs=1e-4)


def test_marking_into_the_originals_needs_overwrite_originals(capsys, tmp_path, network_file):
    src = write_classes(tmp_path / "photos", per_class=2)
    before = digests(src)
    for out in (src, src / "marked"):
        code, _, err = mark(capsys, src, out, tmp_path / "k.npz", network_file, "--fraction", "0.5")
        assert code == 2 and "--out" in err
    assert digests(src) == before
    code, summary, err = mark(capsys, src, src, tmp_path / "k.npz", network_file, "--fraction", "0.5", "--overwrite-originals")
    assert code == 0, err
    replaced = {str(Path(f["source"]).relative_to(src)) for f in summary["files"]}
    after = digests(src)
    assert {n for n in before if before[n] != after[n]} == replaced


def test_mark_needs_a_marking_network(capsys, tmp_path):
    src = write_classes(tmp_path / "photos", per_class=2)
    code, _, err = run(capsys, "mark", str(src), "--fraction", "1", "--key", str(tmp_path / "k.npz"), "--out", str(tmp_path / "o"))
    assert code == 2 and "--network" in err and "--train-network" in err


def test_mark_reads_a_roomscan_dataset_and_writes_a_dataset(capsys, tmp_path, network_file):
    import numpy as np

    from roomscan.data.dataset import DetectionDataset, ImageRecord
    from roomscan.detection.core import make_detections
    from _models import tiny_taxonomy

    src = write_classes(tmp_path / "photos", per_class=2)
    taxonomy = tiny_taxonomy()
    images, annotations = [], {}
    for i, path in enumerate(sorted(src.rglob("*.*"))):
        images.append(ImageRecord(i, str(path.relative_to(src)), SIZE, SIZE))
        cls = i % 2
        annotations[i] = make_detections(np.array([[2.0, 2.0, 20.0, 20.0]]), [1.0], [cls], [taxonomy.slugs[cls]])
    DetectionDataset(src, taxonomy, images, annotations).save(tmp_path / "ds")
    code, summary, err = mark(capsys, tmp_path / "ds", tmp_path / "out", tmp_path / "k.npz", network_file,
                              "--fraction", "0.5", "--copy-unmarked")  # fmt: skip
    assert code == 0, err
    assert set(summary["classes"]) == set(taxonomy.slugs[:2])  # each photo's class: its boxes' amenity
    copy = DetectionDataset.load(tmp_path / "out")
    assert len(copy) == len(images)
    assert all(copy.path(im).is_file() for im in copy.images)


# --- verify ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marked(tmp_path_factory, network_file):
    """Photos, a key (its network beside it), marked copies + the rest, a tiny classifier trained on them, held-out photos."""
    import shutil

    from roomscan.cli import main
    from roomscan.radioactive.classifier import ClassifierConfig, load_labelled_folder, save_classifier, train_classifier

    root = tmp_path_factory.mktemp("verify")
    src = write_classes(root / "photos")
    shutil.copy(network_file, root / "key.network.pt")  # where verify looks when --network is not given
    try:
        main(["mark", str(src), "--fraction", "0.5", "--key", str(root / "key.npz"), "--out", str(root / "out"),
              "--network", str(network_file), *FAST, "--copy-unmarked", "--json"])  # fmt: skip
    except SystemExit as exc:
        assert exc.code in (0, None)
    folder = load_labelled_folder(root / "out")
    model = train_classifier(list(folder.images), list(folder.labels), folder.class_names,
                             ClassifierConfig(widths=(4, 8), image_size=16), epochs=1, seed=1).model  # fmt: skip
    save_classifier(model, root / "model.pt")
    write_classes(root / "held", per_class=5, seed=9)
    return root


def verify(capsys, root: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "verify", "--model", str(root / "model.pt"), "--key", str(root / "key.npz"),
               "--data", str(root / "held"), *extra)  # fmt: skip


def test_verify_reports_each_class_a_combined_p_value_and_a_verdict(capsys, marked):
    code, out, err = verify(capsys, marked, "--json")
    assert code == 0, err
    report = json.loads(out)
    white = report["whitebox"]
    assert [c["name"] for c in white["classes"]] == ["circle", "square"]
    assert all(0 <= c["p_value"] <= 1 and -1 <= c["cosine"] <= 1 for c in white["classes"])
    assert 0 <= white["p_value"] <= 1
    assert white["verdict"]["detected"] == (white["p_value"] < 1e-3)
    assert report["blackbox"] is None
    code, text, _ = verify(capsys, marked)
    assert code == 0 and "white-box verdict" in text and "circle" in text


def test_verify_black_box_pairs_each_marked_copy_with_its_original(capsys, marked):
    code, out, err = verify(capsys, marked, "--marked", str(marked / "out"), "--originals", str(marked / "photos"), "--json")
    assert code == 0, err
    black = json.loads(out)["blackbox"]
    assert black["n_pairs"] == len(MarkingKey.load(marked / "key.npz").files)  # copies of unmarked photos are not pairs
    assert 0 <= black["p_value"] <= 1


def test_verify_black_box_against_a_reference_model(capsys, marked, tmp_path):
    """A reference (a model never shown the marked copies) turns the gap into a comparison with an innocent model."""
    from roomscan.radioactive.classifier import ClassifierConfig, load_labelled_folder, save_classifier, train_classifier

    clean = load_labelled_folder(marked / "photos")
    innocent = train_classifier(list(clean.images), list(clean.labels), clean.class_names,
                                ClassifierConfig(widths=(4, 8), image_size=16), epochs=1, seed=2).model  # fmt: skip
    save_classifier(innocent, tmp_path / "reference.pt")
    pairs = ["--marked", str(marked / "out"), "--originals", str(marked / "photos")]
    code, out, err = verify(capsys, marked, *pairs, "--reference", str(tmp_path / "reference.pt"), "--json")
    assert code == 0, err
    black = json.loads(out)["blackbox"]
    assert black["reference_mean_gap"] is not None and 0 <= black["p_value"] <= 1
    assert not any("no reference model" in note for note in black["notes"])

    other = train_classifier(list(clean.images)[:4] * 2, ["circle", "oval"] * 4, ("circle", "oval"),
                             ClassifierConfig(widths=(4, 8), image_size=16), epochs=1, seed=2).model  # fmt: skip
    save_classifier(other, tmp_path / "other.pt")
    code, _, err = verify(capsys, marked, *pairs, "--reference", str(tmp_path / "other.pt"))
    assert code == 2 and "must be a model of the same classes" in " ".join(err.split())
    code, _, err = verify(capsys, marked, "--reference", str(tmp_path / "reference.pt"))
    assert code == 2 and "--reference is for the black-box test" in " ".join(err.split())


def test_alpha_sets_the_verdicts_threshold(capsys, marked):
    code, out, _ = verify(capsys, marked, "--json", "--alpha", "0.999999")
    assert code == 0
    white = json.loads(out)["whitebox"]
    assert white["verdict"]["alpha"] == 0.999999
    assert white["verdict"]["detected"] == (white["p_value"] < 0.999999)


def test_verify_refuses_a_key_from_another_marking_network(capsys, marked, tmp_path):
    import torch

    torch.manual_seed(123)
    other = save_network(MarkingNetwork(NetworkConfig(widths=(4, 8), image_size=16)).eval(), tmp_path / "other.pt")
    code, _, err = verify(capsys, marked, "--network", str(other))
    assert code == 2 and "marking network" in err and "use the marking network saved with the key" in " ".join(err.split())


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing key", "no such key file"),
        ("not a key", "not a marking key"),
        ("held-out class the key lacks", "have no carrier in the key"),
        ("missing model", "no such classifier file"),
        ("half a black-box", "needs both --marked"),
        ("bad alpha", "--alpha must be in (0, 1)"),
    ],
)
def test_verify_bad_input_is_a_clear_error(capsys, marked, tmp_path, breakage, message):
    args = []
    root = marked
    if breakage in ("missing key", "not a key", "missing model"):
        root = tmp_path
        for name in ("model.pt", "key.npz", "key.network.pt"):
            (root / name).write_bytes((marked / name).read_bytes())
        (root / "held").symlink_to(marked / "held")
        if breakage == "missing key":
            (root / "key.npz").unlink()
        elif breakage == "not a key":
            (root / "key.npz").write_text("hello")
        else:
            (root / "model.pt").unlink()
    elif breakage == "held-out class the key lacks":
        held = write_classes(tmp_path / "held", per_class=5, seed=4, n_classes=3)  # circle, square, triangle
        args = ["--data", str(held)]
    elif breakage == "half a black-box":
        args = ["--marked", str(marked / "out")]
    else:
        args = ["--alpha", "1.5"]
    code, _, err = verify(capsys, root, *args)
    assert code == 2
    assert message in " ".join(err.split())
