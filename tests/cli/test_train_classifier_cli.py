"""``roomscan train-classifier`` on tiny generated class folders: the saved model, held-out accuracy, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from cli_helpers import run

from roomscan.radioactive import MarkingNetwork, NetworkConfig, make_pattern_images, save_network

SIZE = 24
TINY = ("--widths", "4,8", "--image-size", "16", "--epochs", "2", "--batch-size", "8")


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_classes(root: Path, per_class: int = 8, n_classes: int = 2, seed: int = 0) -> Path:
    data = make_pattern_images(per_class, n_classes=n_classes, size=SIZE, seed=seed)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        folder = root / data.names[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    return root


def train(capsys, data: Path, out: Path, *extra: str) -> tuple[int, dict | None, str]:
    code, stdout, err = run(capsys, "train-classifier", str(data), "--out", str(out), *TINY, "--json", *extra)
    return code, (json.loads(stdout) if code == 0 else None), err


def test_trains_and_saves_a_classifier_with_held_out_accuracy(capsys, tmp_path):
    from roomscan.radioactive.classifier import accuracy, load_classifier, load_labelled_folder
    from roomscan.radioactive.classifier_training import stratified_split

    data = write_classes(tmp_path / "photos", per_class=10, n_classes=3)
    code, summary, err = train(capsys, data, tmp_path / "rooms.pt", "--val-fraction", "0.2", "--seed", "4")
    assert code == 0, err
    model = load_classifier(tmp_path / "rooms.pt")
    assert model.class_names == ("circle", "square", "triangle")
    assert model.config.widths == (4, 8) and model.config.image_size == 16
    assert {n: (c["train"], c["val"]) for n, c in summary["classes"].items()} == {
        n: (8, 2) for n in model.class_names
    }
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    assert all(0 <= e["val_accuracy"] <= 1 and e["loss"] > 0 for e in summary["epochs"])
    # The held-out accuracy is the saved model's on the seeded split's held-out photos, and the last epoch's.
    folder = load_labelled_folder(data)
    _, held = stratified_split(folder.labels, 0.2, seed=4)
    expected = accuracy(model, [folder.images[i] for i in held], [folder.labels[i] for i in held])
    assert summary["val_accuracy"] == pytest.approx(expected)
    assert summary["epochs"][-1]["val_accuracy"] == pytest.approx(expected)
    assert sum(c["val_correct"] for c in summary["classes"].values()) == round(expected * 6)
    assert not (tmp_path / "rooms.checkpoint.pt").exists()  # removed once the model is saved


@pytest.mark.parametrize("architecture", ["vgg", "resnet"])
def test_text_output_shows_each_epoch_and_each_class(capsys, tmp_path, architecture):
    from roomscan.radioactive.classifier import load_classifier

    data = write_classes(tmp_path / "photos")
    code, out, err = run(capsys, "train-classifier", str(data), "--out", str(tmp_path / "m.pt"), *TINY,
                         "--architecture", architecture)  # fmt: skip
    assert code == 0, err
    assert load_classifier(tmp_path / "m.pt").config.architecture == architecture
    assert "epoch 1/2:" in err and "epoch 2/2:" in err and "held-out accuracy" in err
    assert "circle" in out and "square" in out
    assert "held-out accuracy:" in out and "on 2 photos" in out
    assert f"model saved to {tmp_path / 'm.pt'}" in " ".join(out.split())


def test_a_separate_validation_folder_is_used_whole(capsys, tmp_path):
    data = write_classes(tmp_path / "photos", per_class=6)
    val = write_classes(tmp_path / "val", per_class=3, seed=5)
    code, summary, err = train(capsys, data, tmp_path / "m.pt", "--val", str(val))
    assert code == 0, err
    assert summary["train_images"] == 12 and summary["val_images"] == 6
    assert {n: c["val"] for n, c in summary["classes"].items()} == {"circle": 3, "square": 3}


def test_val_fraction_zero_holds_nothing_out(capsys, tmp_path):
    data = write_classes(tmp_path / "photos", per_class=3)
    code, summary, err = train(capsys, data, tmp_path / "m.pt", "--val-fraction", "0")
    assert code == 0, err
    assert summary["train_images"] == 6 and summary["val_accuracy"] is None
    assert all(e["val_accuracy"] is None for e in summary["epochs"])


def test_unreadable_photos_are_skipped_and_listed(capsys, tmp_path):
    data = write_classes(tmp_path / "photos")
    broken = data / "circle" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    (data / "square" / "notes.txt").write_text("not a photo")
    code, summary, err = train(capsys, data, tmp_path / "m.pt")
    assert code == 0, err
    assert {str(broken), str(data / "square" / "notes.txt")} <= {s["source"] for s in summary["skipped"]}
    assert summary["train_images"] + summary["val_images"] == 16


def test_an_existing_model_is_replaced_only_with_force(capsys, tmp_path):
    data = write_classes(tmp_path / "photos")
    out = tmp_path / "m.pt"
    assert train(capsys, data, out)[0] == 0
    saved = out.read_bytes()
    code, _, err = train(capsys, data, out, "--seed", "1")
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_bytes() == saved
    code, _, err = train(capsys, data, out, "--seed", "1", "--force")
    assert code == 0, err
    assert out.read_bytes() != saved


def test_an_interrupted_run_resumes_to_the_model_an_uninterrupted_run_gives(capsys, tmp_path, monkeypatch):
    import torch

    from roomscan.radioactive import classifier_training
    from roomscan.radioactive.classifier import load_classifier

    data = write_classes(tmp_path / "photos")
    assert train(capsys, data, tmp_path / "straight.pt")[0] == 0

    save = classifier_training.save_checkpoint

    def crash_after_first_epoch(checkpoint, path, *, run):  # the process dies once epoch 1 is saved
        save(checkpoint, path, run=run)
        raise KeyboardInterrupt

    out = tmp_path / "m.pt"
    with monkeypatch.context() as patch:
        patch.setattr(classifier_training, "save_checkpoint", crash_after_first_epoch)
        code, _, err = train(capsys, data, out)
    checkpoint = tmp_path / "m.checkpoint.pt"
    assert code == 130 and "--resume" in err
    assert checkpoint.is_file() and not out.exists()

    code, _, err = train(capsys, data, out)
    assert code == 2 and "--resume to continue it" in " ".join(err.split())
    code, _, err = train(capsys, data, out, "--resume", "--lr", "0.01")
    assert code == 2 and "--lr" in err and checkpoint.is_file()

    code, summary, err = train(capsys, data, out, "--resume")
    assert code == 0, err
    assert summary["resumed_after_epoch"] == 1 and [e["epoch"] for e in summary["epochs"]] == [1, 2]
    assert not checkpoint.exists()
    resumed, straight = (
        load_classifier(out).state_dict(),
        load_classifier(tmp_path / "straight.pt").state_dict(),
    )
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_verify_accepts_the_trained_model(capsys, tmp_path):
    import torch

    torch.manual_seed(0)
    network = save_network(
        MarkingNetwork(NetworkConfig(widths=(4, 8), image_size=16)).eval(), tmp_path / "key.network.pt"
    )
    photos = write_classes(tmp_path / "photos")
    code, _, err = run(capsys, "mark", str(photos), "--fraction", "0.5", "--key", str(tmp_path / "key.npz"),
                       "--out", str(tmp_path / "marked"), "--network", str(network), "--steps", "4",
                       "--copy-unmarked", "--json")  # fmt: skip
    assert code == 0, err
    code, _, err = train(capsys, tmp_path / "marked", tmp_path / "m.pt")
    assert code == 0, err
    held = write_classes(tmp_path / "held", per_class=4, seed=9)
    code, out, err = run(capsys, "verify", "--model", str(tmp_path / "m.pt"), "--key", str(tmp_path / "key.npz"),
                         "--data", str(held), "--json")  # fmt: skip
    assert code == 0, err
    white = json.loads(out)["whitebox"]
    assert [c["name"] for c in white["classes"]] == ["circle", "square"] and 0 <= white["p_value"] <= 1


def _one_class(root: Path) -> Path:
    write_classes(root / "photos", per_class=3)
    for path in (root / "photos" / "square").iterdir():
        path.unlink()
    (root / "photos" / "square").rmdir()
    return root / "photos"


def _empty_class(root: Path) -> Path:
    (write_classes(root / "photos", per_class=3) / "triangle").mkdir()
    return root / "photos"


def _lone_photo(root: Path) -> Path:
    data = write_classes(root / "photos", per_class=3)
    for path in sorted((data / "square").iterdir())[1:]:
        path.unlink()
    return data


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda root: root / "nowhere", (), "no such folder"),
        (_one_class, (), "only one class (circle)"),
        (_empty_class, (), "class folder(s) triangle hold no readable photo"),
        (_lone_photo, (), "class 'square' has 1 image(s): too few to hold out"),
        (_lone_photo, ("--val-fraction", "0.5"), "--val-fraction 0"),
        (_empty_class, ("--val", "x", "--val-fraction", "0.2"), "not both"),
        (_empty_class, ("--val-fraction", "1"), "--val-fraction must be in [0, 1)"),
        (_empty_class, ("--widths", "4,eight"), "whole channel counts"),
        (_empty_class, ("--architecture", "alexnet"), "unknown classifier architecture"),
        (_empty_class, ("--lr", "0"), "--lr must be positive"),
        (_empty_class, ("--resume",), "no checkpoint at"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(capsys, tmp_path, make, args, message):
    data = make(tmp_path)
    code, _, err = train(capsys, data, tmp_path / "m.pt", *args)
    assert code == 2
    assert message in " ".join(err.split())
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.checkpoint.pt").exists()


def test_a_validation_folder_with_a_class_the_training_lacks_is_refused(capsys, tmp_path):
    data = write_classes(tmp_path / "photos")
    val = write_classes(tmp_path / "val", per_class=2, n_classes=3)
    code, _, err = train(capsys, data, tmp_path / "m.pt", "--val", str(val))
    assert code == 2 and "['triangle'] are not among" in " ".join(err.split())


@pytest.mark.parametrize("out", ["missing-folder/m.pt", "."])
def test_an_unusable_out_path_is_refused_before_training(capsys, tmp_path, out):
    data = write_classes(tmp_path / "photos", per_class=2)
    code, _, err = run(capsys, "train-classifier", str(data), "--out", str(tmp_path / out), *TINY)
    assert code == 2 and "--out" in err
    assert "epoch" not in err
