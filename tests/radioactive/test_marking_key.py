"""The marking key: exact round trip, a pickle-free file, and a clear error for each malformed key (key.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from roomscan.radioactive.config import AugmentConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import KEY_FORMAT_VERSION, MarkedFile, MarkingKey, NetworkIdentity
from roomscan.radioactive.stats import random_carriers

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def _key() -> MarkingKey:
    net = NetworkIdentity("resnet-small", {"widths": [8, 16], "image_size": 32}, SHA_A, feature_dim=16)
    key = MarkingKey.new(
        random_carriers(3, 16, seed=11), ["kitchen", "bedroom", "bäthroom"], net, seed=11,
        epsilon=8 / 255, psnr_floor=40.5, augment=AugmentConfig(crop_scale=(0.6, 1.0), blur_sigma=0.7),
    )  # fmt: skip
    return key.with_files(
        [MarkedFile("in/k1.jpg", "out/k1.jpg", "kitchen", 42.31, 9 / 255, SHA_B, SHA_C),
         MarkedFile("in/b 2.png", "out/b 2.png", "bedroom", float("inf"), 0.0, SHA_C, SHA_C)]
    )  # fmt: skip


def test_round_trip_is_exact(tmp_path):
    key = _key()
    path = key.save(tmp_path / "key.npz")
    back = MarkingKey.load(path)
    np.testing.assert_array_equal(back.carriers, key.carriers)
    assert back.carriers.dtype == np.float64
    assert back.metadata() == key.metadata()
    assert back.files == key.files and back.augment == key.augment and back.network == key.network
    assert back.names == ("kitchen", "bedroom", "bäthroom")
    assert back.created_at and back.format_version == KEY_FORMAT_VERSION


def test_file_needs_no_pickle(tmp_path):
    path = _key().save(tmp_path / "key.npz")
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["carriers", "metadata"]
        assert json.loads(str(data["metadata"]))["names"][0] == "kitchen"


def test_save_writes_the_exact_name_and_never_leaves_temporaries(tmp_path):
    _key().save(tmp_path / "secret.key")
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    with pytest.raises(RadioactiveError, match="does not exist"):
        _key().save(tmp_path / "missing" / "key.npz")
    with pytest.raises(RadioactiveError, match="is a directory"):
        _key().save(tmp_path)


def _write_npz(path, carriers, meta):
    with open(path, "wb") as fh:
        arrays = {}
        if carriers is not None:
            arrays["carriers"] = carriers
        if meta is not None:
            arrays["metadata"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
        np.savez(fh, **arrays)
    return path


def _meta(**changes):
    meta = _key().metadata()
    for k, v in changes.items():
        if v is _DROP:
            meta.pop(k)
        else:
            meta[k] = v
    return meta


_DROP = object()
_GOOD = random_carriers(3, 16, seed=11)


@pytest.mark.parametrize(
    ("carriers", "meta", "message"),
    [
        (_GOOD, None, r"lacks \['metadata'\]"),
        (None, _meta(), r"lacks \['carriers'\]"),
        (_GOOD, _meta(seed=_DROP), r"lacks \['seed'\]"),
        (_GOOD, _meta(format_version=_DROP), "no format_version"),
        (_GOOD, _meta(format_version=99), "format version 99 is not one this roomscan reads"),
        (_GOOD, "{not json", "not valid JSON"),
        (_GOOD, "[1, 2]", "must be a JSON object"),
        (_GOOD[0], _meta(), "2-D array"),
        (_GOOD[:2], _meta(), "2 carriers but 3 names"),
        (_GOOD * 2.0, _meta(), "has length 2, not 1"),
        (np.full((3, 16), np.nan), _meta(), "NaN"),
        (random_carriers(3, 8, seed=0), _meta(), "different networks"),
        (_GOOD.astype(np.int64), _meta(), "floating point"),
        (_GOOD, _meta(names=["a", "a", "b"]), "unique"),
        (_GOOD, _meta(network={"architecture": "x"}), "malformed"),
        (_GOOD, _meta(network={**_key().metadata()["network"], "weights_sha256": "nope"}), "SHA-256"),
        (_GOOD, _meta(files=[{"source": "a.jpg"}]), "malformed"),
        (
            _GOOD,
            _meta(files=[{**_key().metadata()["files"][0], "name": "garage"}]),
            "'garage', which has no carrier",
        ),
        (_GOOD, _meta(augment={"crop_scale": [0.5, 1.0], "rotate": 3}), "unknown settings"),
        (_GOOD, _meta(epsilon=2.0), "epsilon"),
    ],
)
def test_malformed_key_is_named(tmp_path, carriers, meta, message):
    path = _write_npz(tmp_path / "bad.npz", carriers, meta)
    with pytest.raises(RadioactiveError, match=message) as info:
        MarkingKey.load(path)
    assert str(path) in str(info.value)


def test_not_a_key_at_all(tmp_path):
    with pytest.raises(RadioactiveError, match="no such key file"):
        MarkingKey.load(tmp_path / "nothing.npz")
    text = tmp_path / "key.npz"
    text.write_text("carriers = 1, 2, 3\n")
    with pytest.raises(RadioactiveError, match="not a .npz archive"):
        MarkingKey.load(text)
    npy = tmp_path / "carriers.npy"
    np.save(npy, _GOOD)
    with pytest.raises(RadioactiveError, match="single .npy array"):
        MarkingKey.load(npy)
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as fh:
        np.savez(fh, carriers=_GOOD, metadata=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(RadioactiveError, match="not a marking key"):
        MarkingKey.load(pickled)


def test_key_lookups_and_network_check():
    key = _key()
    np.testing.assert_array_equal(key.carrier("bedroom"), key.carriers[1])
    assert key.dim == 16
    with pytest.raises(RadioactiveError, match="no carrier for 'garage'"):
        key.carrier("garage")
    key.check_network(key.network)
    other = replace(key.network, weights_sha256=SHA_B)
    with pytest.raises(RadioactiveError, match="made with marking network"):
        key.check_network(other)
    with pytest.raises(ValueError):
        key.carriers[0, 0] = 1.0  # the carriers cannot be changed behind the key's back
