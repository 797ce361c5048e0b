"""``roomscan train | evaluate | runs`` as a user runs them, including bad input (clear errors, exit 2)."""

from __future__ import annotations

import json
import shutil

import pytest

from roomscan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, shapes_dir, tiny_arch_dir):
    """A 3-epoch run through the CLI, as `roomscan train` writes it."""
    out = tmp_path_factory.mktemp("cli")
    cfg = out / "extra.yaml"
    cfg.write_text("warmup_steps: 5\nclip_grad: 1.0\nhflip: 0.0\nnum_workers: 0\nval_fraction: 0.25\n")
    try:
        main(["train", "--data", str(shapes_dir), "--model", str(tiny_arch_dir), "--scratch", "--epochs", "3",
              "--batch-size", "4", "--lr", "3e-3", "--image-size", "96", "--out", str(out / "runs"),
              "--name", "cli", "--cache-dir", str(out / "cache"), "--config", str(cfg), "--dropout", "0.1"])
    except SystemExit as exc:
        assert not exc.code
    return out / "runs" / "cli"


def test_train_writes_a_loadable_model_and_evaluate_prints_tables(capsys, cli_run, shapes_dir, tmp_path):
    assert (cli_run / "model" / "taxonomy.yaml").is_file()
    # --dropout reaches the saved config and the model, so the run can be an MC-dropout committee.
    assert "dropout: 0.1" in (cli_run / "config.yaml").read_text()
    assert json.loads((cli_run / "model" / "config.json").read_text())["dropout"] == pytest.approx(0.1)
    code, out, err = run(capsys, "evaluate", "--model", str(cli_run / "model"), "--data", str(shapes_dir),
                         "--out", str(tmp_path / "eval"), "--device", "cpu")
    assert code == 0, err
    assert "AP50" in out and "per class" in out and "Circle" in out
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["n_images"] == 24
    assert (tmp_path / "eval" / "pr_curves.png").is_file() and (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_runs_list_show_compare(capsys, cli_run, tmp_path):
    other = tmp_path / "runs" / "copy"
    shutil.copytree(cli_run, other)
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("lr: 0.003", "lr: 0.001"))
    code, out, _ = run(capsys, "runs", "list", str(cli_run.parent))
    assert code == 0 and "cli" in out and "3/3" in out
    code, out, _ = run(capsys, "runs", "show", str(cli_run))
    assert code == 0 and "val AP" in out and "dataset fingerprint" in out
    code, out, _ = run(capsys, "runs", "compare", str(cli_run), str(other))
    assert code == 0 and "lr" in out and "0.003" in out and "0.001" in out and "best AP" in out


def test_resume_of_a_finished_run_changes_nothing(capsys, cli_run):
    before = (cli_run / "metrics.jsonl").read_text()
    code, _, err = run(capsys, "train", "--resume", str(cli_run))
    assert code == 0, err
    assert (cli_run / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "{tmp}/missing", "--model", "x", "--scratch"], "dataset directory not found"),
        (["train", "--data", "{bad}", "--model", "x", "--scratch"], "not valid JSON"),
        (["train", "--data", "{shapes}", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "--data", "{shapes}", "--image-size", "100"], "image_size must be a multiple of 32"),
        (["train", "--data", "{shapes}", "--subset", "2"], "subset must be in (0, 1]"),
        (["train"], "--data DATASET is required"),
        (["train", "--data", "{shapes}", "--model", "no-such/model-xyz", "--out", "{tmp}/r"], "--scratch"),
        (["train", "--data", "{shapes}", "--model", "nope", "--scratch", "--out", "{tmp}/r"], "unknown architecture"),
        (["train", "--resume", "{tmp}/norun"], "no such run directory"),
        (["train", "--resume", "{tmp}", "--data", "{shapes}"], "drop --data"),
        (["evaluate", "--model", "{tmp}/nomodel", "--data", "{shapes}"], "no such model directory"),
        (["runs", "show", "{tmp}"], "not a run directory"),
        (["runs", "list", "{tmp}/none"], "no such runs directory"),
    ],
)
def test_bad_input_gives_a_clear_error(capsys, tmp_path, shapes_dir, monkeypatch, args, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "annotations.json").write_text("{not json")
    filled = [a.format(tmp=tmp_path, shapes=shapes_dir, bad=bad) for a in args]
    code, out, err = run(capsys, *filled)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err


def test_bad_flag_value_is_a_usage_error(capsys, shapes_dir):
    code, _, err = run(capsys, "train", "--data", str(shapes_dir), "--epochs", "many")
    assert code == 2 and "epochs" in err
