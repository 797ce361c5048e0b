"""A detector trained by ``roomscan train`` under the white-box test: its features, head, labels, errors and CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _models import build_tiny_rtdetr  # noqa: E402
from PIL import Image  # noqa: E402

from roomscan.data.synthetic import make_shapes_dataset  # noqa: E402
from roomscan.radioactive import MarkingKey, MarkingNetwork, NetworkConfig, random_carriers  # noqa: E402
from roomscan.radioactive.detector import DetectorFeatures, load_detector, load_labelled_dataset  # noqa: E402
from roomscan.radioactive.errors import RadioactiveError  # noqa: E402
from roomscan.radioactive.network import network_identity, save_network  # noqa: E402
from roomscan.radioactive.verify import verify_whitebox  # noqa: E402

SIZE = 64
SLUGS = ("circle", "square", "triangle")
D_MODEL = 32  # build_tiny_rtdetr's decoder width
D = 16  # the marking network's


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, n_images=20, image_size=(SIZE, SIZE), max_objects=1, min_size=16, seed=0, fmt="PNG")
    return root


@pytest.fixture(scope="module")
def images(shapes: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted((shapes / "images").iterdir())]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shapes: Path) -> Path:
    """A real ``roomscan train`` run directory: a tiny RT-DETRv2 from scratch, one epoch on the shapes."""
    from roomscan.data.dataset import DetectionDataset
    from roomscan.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("train")
    arch = build_tiny_rtdetr(out / "arch", DetectionDataset.load(shapes).taxonomy, image_size=SIZE)
    config = TrainConfig(  # type: ignore[call-arg]
        data=str(shapes), model=str(arch), scratch=True, epochs=1, batch_size=4, lr=3e-3, image_size=SIZE,
        validate=False, cache_dir=str(out / "cache"), out=str(out / "runs"), warmup_steps=2, num_workers=0,
        print_every=1000,
    )  # fmt: skip
    return fit(config, log=lambda _msg: None)


@pytest.fixture(scope="module")
def net() -> MarkingNetwork:
    torch.manual_seed(0)
    return MarkingNetwork(NetworkConfig(widths=(8, D), image_size=32)).eval()


def make_key(net: MarkingNetwork, names=SLUGS, seed: int = 0) -> MarkingKey:
    return MarkingKey.new(random_carriers(len(names), D, seed=seed), names, network_identity(net), seed=seed)


def test_features_are_the_top_query_the_head_scores_one_row_per_image(run_dir, images):
    detector = load_detector(run_dir)
    assert detector.class_names == SLUGS
    assert detector.image_size == SIZE
    assert detector.head is detector.model.model.decoder.class_embed[-1]
    assert (detector.head.in_features, detector.head.out_features) == (D_MODEL, len(SLUGS))
    with torch.no_grad():
        pixels = detector.preprocess(images[:5])
        feats = detector.features(pixels)
        logits = detector.model(pixel_values=pixels).logits  # [5, q, 3]
    assert feats.shape == (5, D_MODEL)
    # The head over each image's feature row gives that image's best score among all its queries: the row is the
    # top query's decoder features, exactly what the class head scored.
    best = logits.amax(dim=(1, 2))
    torch.testing.assert_close(detector.head(feats).amax(-1), best, rtol=1e-4, atol=1e-5)


def test_a_run_directory_and_its_model_directory_load_the_same_detector(run_dir, images):
    a, b = load_detector(run_dir), load_detector(run_dir / "model")
    with torch.no_grad():
        torch.testing.assert_close(a.features(a.preprocess(images[:3])), b.features(b.preprocess(images[:3])))


def test_weighted_pooling_averages_queries_by_their_best_score(run_dir, images):
    top, weighted = load_detector(run_dir), load_detector(run_dir, pooling="weighted")
    with torch.no_grad():
        pixels = top.preprocess(images[:4])
        out = top.model(pixel_values=pixels)
        w = torch.sigmoid(out.logits.amax(-1))  # [4, q]
        expected = (w[..., None] * out.last_hidden_state).sum(1) / w.sum(1, keepdim=True)
        torch.testing.assert_close(weighted.features(pixels), expected)
        assert not torch.allclose(weighted.features(pixels), top.features(pixels))


def test_verify_whitebox_tests_a_detector_with_a_valid_p_value(run_dir, images, net):
    result = verify_whitebox(load_detector(run_dir), make_key(net), net, images)
    assert 0 < result.p_value <= 1
    assert [c.name for c in result.classes] == list(SLUGS)
    assert all(0 < c.p_value <= 1 and -1 <= c.cosine <= 1 for c in result.classes)
    assert (result.dim, result.tested_dim, result.n_images) == (D, D_MODEL, len(images))


def test_an_untrained_detector_directory_is_testable_too(tmp_path, shapes, images, net):
    from roomscan.data.dataset import DetectionDataset

    model_dir = build_tiny_rtdetr(tmp_path / "m", DetectionDataset.load(shapes).taxonomy, image_size=SIZE)
    result = verify_whitebox(load_detector(model_dir), make_key(net, seed=3), net, images)
    assert 0 < result.p_value <= 1


def test_a_d_fine_detector_is_read_through_its_scoring_layer(tmp_path, shapes, images, net):
    """D-FINE (roomscan train's ``dfine_nano`` architecture, random weights) scores with layer ``eval_idx``."""
    from transformers import AutoModelForObjectDetection, RTDetrImageProcessor

    from roomscan.backends.detr import save_model_dir
    from roomscan.data.dataset import DetectionDataset
    from roomscan.train.model import SCRATCH_ARCHITECTURES

    config = SCRATCH_ARCHITECTURES["dfine_nano"](len(SLUGS))
    config.num_queries = 20  # 64 px at strides 16 and 32 gives 20 anchors
    torch.manual_seed(0)
    model = AutoModelForObjectDetection.from_config(config)
    processor = RTDetrImageProcessor(size={"height": SIZE, "width": SIZE})
    model_dir = save_model_dir(model, processor, DetectionDataset.load(shapes).taxonomy, tmp_path / "dfine")
    detector = load_detector(model_dir)
    decoder = detector.model.model.decoder
    assert detector.head is decoder.class_embed[decoder.eval_idx]
    with torch.no_grad():
        assert detector.features(detector.preprocess(images[:3])).shape == (3, config.d_model)
    result = verify_whitebox(detector, make_key(net), net, images)
    assert 0 < result.p_value <= 1 and result.tested_dim == config.d_model


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no such path", "no such run or model directory"),
        ("run without a model yet", "has no model/ yet"),
        ("neither run nor model", "neither a roomscan train run directory"),
        ("unreadable weights", "transformers cannot load this detector"),
        ("bad pooling", "pooling must be one of top, weighted"),
    ],
)
def test_loading_bad_input_is_a_clear_error(tmp_path, run_dir, breakage, message):
    path = tmp_path / "run"
    pooling = "top"
    if breakage == "run without a model yet":
        path.mkdir()
        shutil.copy(run_dir / "config.yaml", path / "config.yaml")
    elif breakage == "neither run nor model":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif breakage == "unreadable weights":
        shutil.copytree(run_dir / "model", path)
        for weights in path.glob("*.safetensors"):
            weights.write_bytes(b"not weights")
    elif breakage == "bad pooling":
        path, pooling = run_dir, "max"
    with pytest.raises(RadioactiveError) as err:
        load_detector(path, pooling=pooling)  # type: ignore[arg-type]
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("circle", "square", "triangle", "diamond"), "the key marks 4 classes"),
        (("circle", "square", "hexagon"), "the key's classes ['hexagon'] are not labels of the detector"),
    ],
)
def test_a_key_of_other_classes_is_refused(run_dir, images, net, names, message):
    with pytest.raises(RadioactiveError) as err:
        verify_whitebox(load_detector(run_dir), make_key(net, names), net, images)
    assert message in str(err.value)


def test_a_head_that_disagrees_with_the_labels_is_refused(run_dir):
    detector = load_detector(run_dir)
    model = detector.model
    model.config.id2label = {0: "circle", 1: "square"}
    with pytest.raises(RadioactiveError, match="scores 3 classes but its config names 2 labels"):
        DetectorFeatures(model, detector.processor)


def test_a_held_out_dataset_labels_each_photo_by_its_box(shapes):
    from roomscan.data.dataset import DetectionDataset

    ds = DetectionDataset.load(shapes)
    held = load_labelled_dataset(shapes)
    expected = [ds.taxonomy.slugs[int(dets.class_id[0])] for _, dets in ds]
    assert [held.class_names[y] for y in held.labels] == expected
    assert len(held.images) == 20 and not held.skipped


# --- the CLI ------------------------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from roomscan.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def key_files(tmp_path_factory, net) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("key")
    return make_key(net).save(folder / "key.npz"), save_network(net, folder / "marker.pt")


def test_roomscan_verify_tests_a_training_run_on_a_held_out_dataset(capsys, run_dir, shapes, key_files):
    key, network = key_files
    code, out, err = run_cli(capsys, "verify", "--model", str(run_dir), "--key", str(key), "--network", str(network),
                             "--data", str(shapes), "--json")  # fmt: skip
    assert code == 0, err
    white = json.loads(out)["whitebox"]
    assert [c["name"] for c in white["classes"]] == list(SLUGS)
    assert white["tested_dim"] == D_MODEL and white["n_images"] == 20
    assert 0 < white["p_value"] <= 1


def test_roomscan_verify_refuses_the_black_box_test_for_a_detector(capsys, run_dir, shapes, key_files):
    key, network = key_files
    code, _, err = run_cli(capsys, "verify", "--model", str(run_dir), "--key", str(key), "--network", str(network),
                           "--data", str(shapes), "--marked", str(shapes), "--originals", str(shapes))  # fmt: skip
    assert code == 2
    assert "drop --marked, --originals and --reference" in " ".join(err.split())
