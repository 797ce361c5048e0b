"""``roomscan active simulate`` end to end at the smallest size: tables, files, continuing, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _models import build_tiny_rtdetr
from cli_helpers import run

from roomscan.data.synthetic import make_shapes_dataset

SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("sim")
    dataset = make_shapes_dataset(root / "pool", n_images=16, image_size=(SIZE, SIZE), max_objects=2, min_size=14)
    arch = build_tiny_rtdetr(root / "arch", dataset.taxonomy, image_size=SIZE)
    recipe = root / "train.yaml"
    recipe.write_text("warmup_steps: 1\nclip_grad: 1.0\nhflip: 0.0\nbatch_size: 4\nlr: 0.003\neval_batch_size: 8\n")
    return root / "pool", arch, recipe


def _args(pool: Path, arch: Path, recipe: Path, out: Path, *extra: str) -> list[str]:
    return ["active", "simulate", "--data", str(pool), "--strategy", "bald", "--strategy", "random",
            "--rounds", "2", "--budget", "3", "--initial", "3", "--seeds", "1", "--committee", "mc-dropout:2",
            "--epochs", "1", "--model", str(arch), "--image-size", str(SIZE), "--train-config", str(recipe),
            "--device", "cpu", "--metric", "map50", "--target-map", "0.9", "--out", str(out), *extra]


def test_simulate_prints_the_curves_and_the_labels_to_target_and_continues(env, capsys, setup, tmp_path):
    pool, arch, recipe = setup
    out = tmp_path / "sim"
    code, stdout, stderr = run(capsys, *_args(pool, arch, recipe, out))
    assert code == 0, stderr
    assert "AP50 per labels spent" in stdout and "labels needed to reach the target" in stdout
    assert "bald" in stdout and "random" in stdout and "(control)" in stdout
    assert "> 6 (0/1 seeds reached)" in stdout or "± " in stdout  # a tiny model rarely reaches AP50 0.9
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["strategy"], r["round"]) for r in rows) == [("bald", 0), ("bald", 1), ("random", 0), ("random", 1)]
    summary = json.loads((out / "summary.json").read_text())
    assert [s["strategy"] for s in summary["strategies"]] == ["bald", "random"]
    assert summary["config"]["train"]["lr"] == 0.003 and summary["config"]["train"]["epochs"] == 1
    assert (out / "curves.png").stat().st_size > 0

    code, stdout, stderr = run(capsys, *_args(pool, arch, recipe, out))
    assert code == 0, stderr
    assert "4 round(s) continued" in stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--strategy", "psychic"), "unknown strategy psychic"),
        (("--committee", "ensemble:1"), "ensemble:K"),
        (("--dropout", "0"), "dropout > 0"),
        (("--dropout", "1.5"), "dropout must be in [0, 1)"),
    ],
)
def test_bad_options_exit_2_with_the_reason(env, capsys, setup, tmp_path, extra, message):
    pool, arch, recipe = setup
    code, _, stderr = run(capsys, *_args(pool, arch, recipe, tmp_path / "sim", *extra))
    assert code == 2
    assert message in " ".join(stderr.split())


def test_an_empty_pool_exits_2(env, capsys, setup, tmp_path):
    _, arch, recipe = setup
    (tmp_path / "empty" / "images").mkdir(parents=True)
    code, _, stderr = run(capsys, *_args(tmp_path / "empty", arch, recipe, tmp_path / "sim"))
    assert code == 2
    assert "annotations.json" in stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("{not json", "unreadable simulation settings"),
        ("[1, 2]", "unreadable simulation settings"),
        ('{"identity": 5}', "unreadable simulation settings"),
    ],
)
def test_an_unreadable_simulation_json_exits_2_and_is_kept(env, capsys, setup, tmp_path, settings, message):
    pool, arch, recipe = setup
    out = tmp_path / "sim"
    out.mkdir()
    (out / "simulation.json").write_text(settings)
    code, _, stderr = run(capsys, *_args(pool, arch, recipe, out))
    assert code == 2, stderr
    assert message in " ".join(stderr.split())
    assert (out / "simulation.json").read_text() == settings  # not overwritten: the results beside it stay paired


def test_an_out_that_is_a_file_exits_2(env, capsys, setup, tmp_path):
    pool, arch, recipe = setup
    (tmp_path / "sim").write_text("mine")
    code, _, stderr = run(capsys, *_args(pool, arch, recipe, tmp_path / "sim"))
    assert code == 2, stderr
    assert "cannot create the output directory" in " ".join(stderr.split())
    assert (tmp_path / "sim").read_text() == "mine"
