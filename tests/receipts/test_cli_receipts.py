"""``roomscan receipt ...`` as a user runs it (in-process)."""

from __future__ import annotations

import csv
import json

import pytest

from roomscan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_read_json(capsys, clean_receipts, tmp_path):
    code, out, _ = run(
        capsys,
        "receipt",
        "read",
        str(clean_receipts[0]),
        "--json",
        "-e",
        "tesseract",
        "--debug-dir",
        str(tmp_path / "dbg"),
    )
    assert code == 0
    truth = json.loads(clean_receipts[0].with_suffix(".json").read_text())
    assert json.loads(out)[0]["total"] == truth["total"]
    assert (tmp_path / "dbg" / "01_input.png").exists()


def test_read_a_non_image_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    code, _, err = run(capsys, "receipt", "read", str(bad), "-e", "tesseract")
    assert code == 2 and "notes.jpg" in err and "not an image" in err


def test_batch_skips_a_bad_file_and_reads_the_rest(capsys, clean_receipts, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in clean_receipts[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    out_csv = tmp_path / "receipts.csv"
    code, _, err = run(capsys, "receipt", "batch", str(folder), "--out", str(out_csv), "-e", "tesseract")
    err = " ".join(err.split())
    assert (
        code == 1 and "broken.png" in err and "2 read, 1 skipped" in err
    )  # written, but not every file read
    rows = {r["file"]: r for r in csv.DictReader(out_csv.open())}
    assert rows["broken.png"]["error"] and rows[clean_receipts[0].name]["total"]


def test_evaluate_reports_per_field_accuracy(capsys, clean_receipts):
    code, out, _ = run(
        capsys, "receipt", "evaluate", str(clean_receipts[0].parent), "-e", "tesseract", "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["n"] == 3 and "total" in report["accuracy"] and report["cer"] < 0.1


@pytest.mark.parametrize("args", [["--engine", "nope"], ["--date-order", "ymd"]])
def test_bad_options_are_clear_errors(capsys, clean_receipts, args):
    code, _, err = run(capsys, "receipt", "read", str(clean_receipts[0]), *args)
    assert code == 2 and "error" in err


@pytest.mark.parametrize(
    ("args", "count", "suffix"),
    [(["--n", "2", "--rotated"], 2, ".jpg"), (["--held-out"], 36, ".png")],
)
def test_synth_writes_receipts_with_ground_truth(capsys, tmp_path, args, count, suffix):
    code, _, err = run(capsys, "receipt", "synth", str(tmp_path / "out"), *args)
    images = sorted((tmp_path / "out").glob(f"*{suffix}"))
    assert code == 0 and f"wrote {count} receipts" in err and len(images) == count
    assert all(json.loads(p.with_suffix(".json").read_text())["total"] for p in images)
