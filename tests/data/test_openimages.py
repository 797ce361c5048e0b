"""The Open Images subset builder against a local HTTP server laid out like Google's storage and the CVDF bucket."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roomscan.data.dataset import DetectionDataset
from roomscan.data.formats.openimages import BOX_COLUMNS
from roomscan.data.openimages import DownloadError, prepare_openimages, select_images
from roomscan.taxonomy import Amenity, Taxonomy

TAX = Taxonomy((
    Amenity(slug="bed", name="Bed", mid="/m/03ssj5"),
    Amenity(slug="oven", name="Oven", mid="/m/029bxz"),
    Amenity(slug="sink", name="Sink", mid="/m/0130jx"),
))
PERSON = "/m/01g317"
# image id -> boxes (mid, xmin, xmax, ymin, ymax); "b..." images have beds, "o..." ovens, "s..." sinks.
IMAGES = {
    **{f"b{i:03d}": [("/m/03ssj5", 0.1, 0.6, 0.2, 0.9)] for i in range(6)},
    **{f"o{i:03d}": [("/m/029bxz", 0.0, 0.5, 0.0, 0.5), (PERSON, 0.2, 0.3, 0.2, 0.3)] for i in range(3)},
    "s000": [("/m/0130jx", 0.25, 0.75, 0.25, 0.75), ("/m/03ssj5", 0.0, 1.0, 0.5, 1.0)],
    "s001": [("/m/0130jx", 0.1, 0.2, 0.1, 0.2)],
    "p000": [(PERSON, 0.1, 0.2, 0.1, 0.2)],
}


def jpeg(seed: int, size=(80, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype="uint8")).save(buf, "JPEG")
    return buf.getvalue()


class Server:
    """A 127.0.0.1 HTTP server over ``root``; records paths requested; ``behaviour[path]`` = fail | slow | corrupt."""

    def __init__(self, root: Path) -> None:
        self.root, self.requests, self.behaviour, self.ranges = root, [], {}, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                mode = server.behaviour.get(self.path)
                if mode == "fail":
                    self.send_error(500)
                elif mode == "slow":
                    time.sleep(1.5)
                    self.send_error(503)
                elif self.headers.get("Range") and self.path.endswith(".csv"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    server.ranges.append((self.path, start))
                    body = (root / self.path.lstrip("/")).read_bytes()[start:]
                    self.send_response(206)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif mode == "corrupt":
                    body = jpeg(1)[:300]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def image_requests(self) -> list[str]:
        return sorted(p.rsplit("/", 1)[-1].removesuffix(".jpg") for p in self.requests if p.startswith("/validation/"))


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    (root / "v5").mkdir(parents=True)
    (root / "v7").mkdir()
    (root / "validation").mkdir()
    lines = [",".join(BOX_COLUMNS)]
    for image_id, boxes in IMAGES.items():
        for mid, x1, x2, y1, y2 in boxes:
            lines.append(f"{image_id},xclick,{mid},1,{x1},{x2},{y1},{y2},0,0,0,0,0")
    (root / "v5" / "validation-annotations-bbox.csv").write_text("\n".join(lines) + "\n")
    (root / "v7" / "oidv7-class-descriptions-boxable.csv").write_text(
        "LabelName,DisplayName\n/m/03ssj5,Bed\n/m/029bxz,Oven\n/m/0130jx,Sink\n/m/01g317,Person\n")
    for n, image_id in enumerate(IMAGES):
        (root / "validation" / f"{image_id}.jpg").write_bytes(jpeg(n))
    srv = Server(root)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def run(server, out, **kwargs):
    kwargs = {"max_per_class": 10, "workers": 2, "timeout": 1.0, **kwargs}
    return prepare_openimages(out, split="validation", taxonomy=TAX, base_url=server.url, images_url=server.url, **kwargs)


def test_selects_the_taxonomy_classes_up_to_n_per_class_and_writes_a_roomscan_dataset(server, tmp_path):
    result = run(server, tmp_path / "oi", max_per_class=2)
    ds = DetectionDataset.load(tmp_path / "oi")
    assert result.done == len(ds) == result.selected and result.failed == 0
    ids = {im.file_name.removesuffix(".jpg") for im in ds.images}
    assert "p000" not in ids  # person only: not a taxonomy class
    assert len(ids) <= 2 * len(TAX)
    assert all(result.per_class[s] >= 2 for s in TAX.slugs)
    assert all(lbl in TAX.slugs for _, d in ds for lbl in d.data["class_name"])  # person boxes dropped
    s000 = next(im for im in ds.images if im.file_name == "s000.jpg") if "s000" in ids else None
    if s000 is not None:
        np.testing.assert_allclose(ds.annotations[s000.id].xyxy[0], [20, 15, 60, 45], atol=1e-3)  # 80x60 image
    # Deterministic: a second selection into a new folder picks the same images.
    again = run(server, tmp_path / "oi2", max_per_class=2)
    assert again.selected == result.selected
    assert sorted(p.name for p in (tmp_path / "oi2" / "images").iterdir()) == sorted(f"{i}.jpg" for i in ids)


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (1, 3), (2, 0), (2, 1), (3, 0), (100, 0)])
def test_select_images_gives_each_class_n_images_rarest_first_and_reproducibly(n, seed):
    boxes = {i: [({"/m/03ssj5": "bed", "/m/029bxz": "oven", "/m/0130jx": "sink"}[m], (0, 0, 1, 1), 0)
                 for m, *_ in bs if m != PERSON] for i, bs in IMAGES.items()}
    boxes = {k: v for k, v in boxes.items() if v}
    chosen = select_images(boxes, TAX.slugs, n, seed=seed)
    assert chosen == select_images(boxes, TAX.slugs, n, seed=seed)
    available = {s: sum(any(b[0] == s for b in bs) for bs in boxes.values()) for s in TAX.slugs}
    got = {s: sum(any(b[0] == s for b in boxes[i]) for i in chosen) for s in TAX.slugs}
    assert all(got[s] >= min(n, available[s]) for s in TAX.slugs), got
    assert len(chosen) <= n * len(TAX)
    if n >= max(available.values()):
        assert len(chosen) == len(boxes)  # everything fits: take it all


def test_an_interrupted_run_resumes_without_downloading_finished_images(server, tmp_path):
    seen = []

    def stop_after_three(stage, done, total):
        seen.append(done)
        if stage == "images" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(server, tmp_path / "oi", on_progress=stop_after_three, workers=1)
    first = set(server.image_requests())
    finished = {p.stem for p in (tmp_path / "oi" / "images").glob("*.jpg")}
    assert len(finished) >= 3 and json.loads((tmp_path / "oi" / "manifest.json").read_text())["images"]
    server.requests.clear()
    result = run(server, tmp_path / "oi")
    assert not finished & set(server.image_requests()), "finished images were downloaded again"
    assert not any("annotations-bbox" in p for p in server.requests), "the cached CSV was downloaded again"
    assert result.skipped == len(finished) and result.done == result.selected == 11
    assert first | set(server.image_requests()) >= {i for i in IMAGES if i != "p000"}
    assert not list((tmp_path / "oi" / "images").glob("*.part"))


def test_failed_and_timed_out_images_are_reported_then_retried(server, tmp_path):
    server.behaviour = {"/validation/b001.jpg": "fail", "/validation/o002.jpg": "slow"}
    result = run(server, tmp_path / "oi")
    assert set(result.failures) == {"b001", "o002"} and "HTTP 500" in result.failures["b001"]
    assert result.done == 9 and len(DetectionDataset.load(tmp_path / "oi")) == 9
    server.behaviour, server.requests[:] = {}, []
    result = run(server, tmp_path / "oi")
    assert server.image_requests() == ["b001", "o002"]
    assert result.done == 11 and result.failed == 0


def test_a_corrupt_download_is_failed_not_included(server, tmp_path):
    server.behaviour = {"/validation/s001.jpg": "corrupt"}
    result = run(server, tmp_path / "oi")
    assert "s001" in result.failures and any(w in result.failures["s001"] for w in ("truncated", "corrupt"))
    ds = DetectionDataset.load(tmp_path / "oi")
    assert "s001.jpg" not in {im.file_name for im in ds.images}
    assert not (tmp_path / "oi" / "images" / "s001.jpg").exists()
    assert not (tmp_path / "oi" / "images" / "s001.jpg.part").exists()


def test_local_csvs_need_no_annotation_download(server, tmp_path):
    www = server.root
    result = run(server, tmp_path / "oi", annotations=www / "v5" / "validation-annotations-bbox.csv",
                 classes=www / "v7" / "oidv7-class-descriptions-boxable.csv")
    assert result.done == 11
    assert all(p.startswith("/validation/") for p in server.requests)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_offline_says_what_could_not_be_fetched_and_how_to_proceed(server, tmp_path):
    dead = closed_port_url()
    with pytest.raises(DownloadError) as info:
        prepare_openimages(tmp_path / "oi", taxonomy=TAX, base_url=dead, images_url=dead, timeout=1.0)
    text = str(info.value)
    assert f"{dead}/v5/validation-annotations-bbox.csv" in text and "--annotations" in text and "connected machine" in text
    # With local CSVs but no image server: the images are what could not be fetched.
    with pytest.raises(DownloadError, match="images"):
        prepare_openimages(tmp_path / "oi", taxonomy=TAX, images_url=dead, timeout=1.0,
                           annotations=server.root / "v5" / "validation-annotations-bbox.csv")


def test_an_interrupted_csv_download_resumes_with_a_range_request(server, tmp_path):
    full = (server.root / "v5" / "validation-annotations-bbox.csv").read_bytes()
    cache = tmp_path / "oi" / ".cache"
    cache.mkdir(parents=True)
    (cache / "validation-annotations-bbox.csv.part").write_bytes(full[:100])
    stages = set()
    result = run(server, tmp_path / "oi", on_progress=lambda stage, done, total: stages.add(stage))
    assert server.ranges == [("/v5/validation-annotations-bbox.csv", 100)]
    assert (cache / "validation-annotations-bbox.csv").read_bytes() == full
    assert result.done == 11 and stages == {"annotations", "images"}


def test_the_image_list_gives_an_attribution_file(server, tmp_path):
    images_csv = tmp_path / "validation-images-with-rotation.csv"
    images_csv.write_text("ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
                          "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation\n"
                          + "".join(f"{i},validation,https://farm.example/{i}.jpg,https://flickr.example/{i},"
                                    f"https://creativecommons.org/licenses/by/2.0/,,Ann {i},T,1,x,,0\n" for i in IMAGES))
    run(server, tmp_path / "oi", images_csv=images_csv)
    text = (tmp_path / "oi" / "attribution.csv").read_text()
    assert text.startswith("ImageID,OriginalURL") and "Ann b000" in text and "p000" not in text
