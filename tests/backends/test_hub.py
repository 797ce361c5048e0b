"""Model resolution: known names, hub ids, local directories, and what a user sees when weights are missing."""

from __future__ import annotations

import shutil

import pytest

from roomscan.backends import KNOWN_MODELS, get_detector, list_models, pull_model
from roomscan.backends._hub import hf_cache_dir, resolve_model, weights_version
from roomscan.errors import ModelUnavailableError

OWLV2_HUB_ID = "google/owlv2-base-patch16-ensemble"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path; offline mode off unless a test turns it on."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return tmp_path / "hf" / "hub"


def _fake_snapshot(cache, hub_id: str, source_dir, commit: str = "a" * 40):
    """Lay out a model in the cache the way huggingface_hub does (refs/main -> snapshots/<commit>)."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(source_dir, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_offline_with_an_empty_cache_says_what_is_missing_and_how_to_get_it(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as info:
        get_detector("owlv2", device="cpu")
    message = str(info.value)
    assert OWLV2_HUB_ID in message
    assert str(empty_cache) in message
    assert "roomscan models pull owlv2" in message
    assert "--model PATH" in message
    assert "HF_HUB_OFFLINE" in message


def test_no_network_fails_with_model_unavailable(empty_cache):
    # The sandbox has no internet: the download attempt must end in our error, not a library traceback.
    with pytest.raises(ModelUnavailableError) as info:
        get_detector("owlv2", device="cpu")
    message = str(info.value)
    assert OWLV2_HUB_ID in message and str(empty_cache) in message and "roomscan models pull owlv2" in message


def test_unknown_hub_id_offline(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="roomscan models pull someone/some-detector"):
        resolve_model("someone/some-detector")


def test_cached_hub_model_resolves_offline_with_its_commit(empty_cache, monkeypatch, tiny_owlv2_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_snapshot(empty_cache, OWLV2_HUB_ID, tiny_owlv2_dir, commit="c" * 40)
    resolved = resolve_model("owlv2")
    assert resolved.path == snapshot and resolved.version == "c" * 40
    assert resolved.name == OWLV2_HUB_ID and resolved.backend == "owlv2"
    assert resolve_model(OWLV2_HUB_ID).path == snapshot
    statuses = {s.name: s for s in list_models()}
    assert statuses["owlv2"].cached and statuses["owlv2"].path == snapshot
    assert not statuses["owlv2-large"].cached
    detector = get_detector("owlv2", device="cpu", score_threshold=0.0)
    assert detector.info.key.startswith(f"owlv2:{OWLV2_HUB_ID}@cccccccccccc+")


def test_list_models_names_every_known_model(empty_cache):
    statuses = list_models()
    assert [s.name for s in statuses] == list(KNOWN_MODELS)
    assert all(not s.cached and s.path is None for s in statuses)
    assert statuses[0].hub_id == OWLV2_HUB_ID and statuses[0].description


def test_pull_model_fails_clearly_without_network(empty_cache):
    with pytest.raises(ModelUnavailableError, match=OWLV2_HUB_ID):
        pull_model("owlv2")


def test_pull_model_returns_a_local_directory_as_is(tiny_owlv2_dir):
    assert pull_model(tiny_owlv2_dir) == tiny_owlv2_dir.resolve()


def test_hf_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert hf_cache_dir() == tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hf_cache_dir() == tmp_path / "elsewhere"


def test_local_version_is_a_hash_of_the_weights(tiny_owlv2_dir, tmp_path):
    copy = shutil.copytree(tiny_owlv2_dir, tmp_path / "copy")
    version = weights_version(copy)
    assert version == weights_version(tiny_owlv2_dir) and len(version) == 16
    (copy / "tokenizer_config.json").write_text("{}")  # not a weight file: same version
    assert weights_version(copy) == version
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert weights_version(copy) != version


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing" / "dir", "no such model directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no config.json"),
        (lambda p: (p / "file.bin").write_bytes(b"x") and p / "file.bin", "is a file"),
    ],
)
def test_bad_local_paths(tmp_path, make, message):
    with pytest.raises(ModelUnavailableError, match=message):
        resolve_model(make(tmp_path))


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "owlv2"}')
    with pytest.raises(ModelUnavailableError, match="no weight files"):
        resolve_model(tmp_path)


def test_a_failing_download_is_wrapped(empty_cache, monkeypatch):
    # With a proxy configured we skip the reachability probe; the hub client's own error must still become ours.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(ModelUnavailableError, match="the download failed") as info:
        resolve_model("owlv2")
    assert "roomscan models pull owlv2" in str(info.value)
