"""`flnas data summary | prepare | synth` and every bad-input case: one error line (file, row), exit 2."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from flnas.cli.main import main
from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, METADATA


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def small_base(tmp_path_factory) -> Path:
    from flnas.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("small") / "data", n=24, seed=3, image_size=16)


@pytest.fixture()
def small(small_base, tmp_path) -> Path:
    """A fresh copy of a 24-record synthetic set that a test may damage."""
    return Path(shutil.copytree(small_base, tmp_path / "data"))


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def edit_csv(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    rows = read_rows(path)
    edit(rows)
    write_rows(path, rows)


def meta_row_of(root: Path, image: str) -> int:
    """Spreadsheet row (header = 1) of ``image`` in the metadata CSV."""
    rows = read_rows(root / METADATA)
    return next(i + 1 for i, row in enumerate(rows) if row[0] == image)


def test_synth_then_summary_json_then_cache_hit(tmp_path, capsys):
    out = tmp_path / "syn"
    code, stdout, _ = run(
        ["data", "synth", "--out", str(out), "--n", "40", "--seed", "1", "--image-size", "16"], capsys
    )
    assert code == 0 and (out / "SYNTHETIC.txt").is_file() and str(out) in stdout
    argv = [
        "data",
        "summary",
        "--data",
        str(out),
        "--json",
        "--image-size",
        "16",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    code, stdout, _ = run(argv, capsys)
    first = json.loads(stdout)
    assert code == 0
    assert first["name"] == "synthetic (flnas)" and first["synthetic"] is True
    assert sum(first["class_counts"].values()) == 40 == sum(first["splits"].values())
    assert set(first["group_counts"]) == {"male", "female", "young", "middle", "old"}
    assert set(first["missing"]) == {"sex", "age"}
    assert first["cache"]["hit"] is False and first["cache"]["decoded"] == 40
    _, stdout, _ = run(argv, capsys)
    second = json.loads(stdout)
    assert second["cache"] == {**second["cache"], "hit": True, "decoded": 0, "path": first["cache"]["path"]}
    assert second["class_counts"] == first["class_counts"] and second["splits"] == first["splits"]


def test_summary_table_and_subset(small, tmp_path, capsys):
    code, stdout, _ = run(
        [
            "data",
            "summary",
            "--data",
            str(small),
            "--subset",
            "12",
            "--image-size",
            "16",
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    assert code == 0
    assert "SYNTHETIC" in stdout and "12 records" in stdout and "subset: 12 of 12 requested" in stdout
    for group in ("male", "female", "young", "middle", "old", "unknown sex"):
        assert group in stdout


def test_prepare_reports_ok_and_builds_cache(small, tmp_path, capsys):
    cache = tmp_path / "c"
    code, stdout, _ = run(
        [
            "data",
            "prepare",
            "--data",
            str(small),
            "--image-size",
            "16",
            "--no-progress",
            "--cache-dir",
            str(cache),
        ],
        capsys,
    )
    assert code == 0 and "24 records checked and cached" in stdout
    assert len(list(cache.glob("*.npy"))) == 1


def test_summary_defaults_to_embedded_synthetic(capsys, monkeypatch, tmp_path):
    import flnas.data.synthetic as synthetic

    monkeypatch.setitem(synthetic.DEFAULT_SYNTHETIC, "n", 30)
    monkeypatch.setitem(synthetic.DEFAULT_SYNTHETIC, "image_size", 16)
    monkeypatch.setenv("FLNAS_CACHE_DIR", str(tmp_path / "root"))
    code, stdout, _ = run(["data", "summary", "--json", "--image-size", "16", "--no-progress"], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["synthetic"] and summary["records"] == 30
    assert summary["root"].startswith(str(tmp_path / "root"))


# ---- bad input: (damage, expected message fragments) ---------------------------------------------------


def _rm(rel: str) -> Callable[[Path], list[str]]:
    def damage(root: Path) -> list[str]:
        target = root / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return [rel, "not found"]

    return damage


def _drop_column(csv_name: str, column: str) -> Callable[[Path], list[str]]:
    def damage(root: Path) -> list[str]:
        rows = read_rows(root / csv_name)
        j = rows[0].index(column)
        write_rows(root / csv_name, [r[:j] + r[j + 1 :] for r in rows])
        return [csv_name, column, "missing"]

    return damage


def _missing_image(root: Path) -> list[str]:
    image = read_rows(root / GROUND_TRUTH)[5][0]  # row 6 in a spreadsheet
    (root / IMAGE_DIR / f"{image}.jpg").unlink()
    return [GROUND_TRUTH, "row 6", image, "listed but", "does not exist"]


def _unreadable_image(root: Path) -> list[str]:
    image = read_rows(root / GROUND_TRUTH)[4][0]
    (root / IMAGE_DIR / f"{image}.jpg").write_bytes(b"this is not a JPEG")
    return [f"{image}.jpg", GROUND_TRUTH, "row 5", "unreadable image"]


def _truncated_image(root: Path) -> list[str]:
    image = read_rows(root / GROUND_TRUTH)[7][0]
    path = root / IMAGE_DIR / f"{image}.jpg"
    path.write_bytes(path.read_bytes()[:200])
    return [f"{image}.jpg", "row 8", "unreadable image"]


def _label(values: list[str], expect: str) -> Callable[[Path], list[str]]:
    def damage(root: Path) -> list[str]:
        def edit(rows: list[list[str]]) -> None:
            rows[3][1:] = values

        edit_csv(root / GROUND_TRUTH, edit)
        return [GROUND_TRUTH, "row 4", "not one-hot", expect]

    return damage


def _meta_value(column: str, value: str, expect: list[str]) -> Callable[[Path], list[str]]:
    def damage(root: Path) -> list[str]:
        image = read_rows(root / GROUND_TRUTH)[2][0]
        row = meta_row_of(root, image)

        def edit(rows: list[list[str]]) -> None:
            rows[row - 1][rows[0].index(column)] = value

        edit_csv(root / METADATA, edit)
        return [METADATA, f"row {row}", image, *expect]

    return damage


def _duplicate(root: Path) -> list[str]:
    edit_csv(root / GROUND_TRUTH, lambda rows: rows.append(list(rows[2])))
    return [GROUND_TRUTH, "row 26", "listed twice", "row 3"]


BAD_INPUTS = {
    "missing image folder": _rm(IMAGE_DIR),
    "missing ground truth csv": _rm(GROUND_TRUTH),
    "missing metadata csv": _rm(METADATA),
    "ground truth without NV column": _drop_column(GROUND_TRUTH, "NV"),
    "ground truth without image column": _drop_column(GROUND_TRUTH, "image"),
    "metadata without sex column": _drop_column(METADATA, "sex"),
    "metadata without lesion_id column": _drop_column(METADATA, "lesion_id"),
    "image listed but missing": _missing_image,
    "unreadable image": _unreadable_image,
    "truncated image": _truncated_image,
    "two labels set": _label(["1.0", "1.0", "0", "0", "0", "0", "0", "0", "0"], "2 classes set: MEL, NV"),
    "no label set": _label(["0"] * 9, "0 classes set"),
    "label not a number": _label(["yes", "0", "0", "0", "0", "0", "0", "0", "0"], "MEL is 'yes'"),
    "unknown sex": _meta_value("sex", "alien", ["unknown sex value 'alien'"]),
    "age not a number": _meta_value("age_approx", "old", ["age_approx 'old'"]),
    "duplicate image": _duplicate,
}


@pytest.mark.parametrize("command", ["summary", "prepare"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line_with_exit_2(case, command, small, tmp_path, capsys):
    expected = BAD_INPUTS[case](small)
    code, stdout, stderr = run(
        [
            "data",
            command,
            "--data",
            str(small),
            "--image-size",
            "16",
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    assert code == 2
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    line = " ".join(stderr.split())  # undo rich's soft wrapping
    for fragment in expected:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def test_missing_data_folder(tmp_path, capsys):
    code, _, stderr = run(["data", "summary", "--data", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "nowhere" in stderr and "data folder not found" in stderr


def test_skip_bad_goes_on_and_reports_reasons(small, tmp_path, capsys):
    _missing_image(small)
    _unreadable_image(small)
    _label(["0"] * 9, "")(small)
    _meta_value("sex", "alien", [])(small)
    code, stdout, _ = run(
        [
            "data",
            "summary",
            "--data",
            str(small),
            "--skip-bad",
            "--json",
            "--image-size",
            "16",
            "--no-progress",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    summary = json.loads(stdout)
    assert code == 0
    assert summary["skipped"] == {
        "total": 4,
        "by_reason": {"missing_image": 1, "not_one_hot": 1, "unknown_sex": 1, "unreadable_image": 1},
    }
    assert summary["records"] == 20 == sum(summary["splits"].values())


def test_bad_subset_and_image_size(small, capsys):
    code, _, stderr = run(["data", "summary", "--data", str(small), "--subset", "0", "--no-progress"], capsys)
    assert code == 2 and "--subset" in stderr
    code, _, stderr = run(
        ["data", "summary", "--data", str(small), "--image-size", "2", "--no-progress"], capsys
    )
    assert code == 2 and "--image-size" in stderr


def test_synth_refuses_to_overwrite_real_data(tmp_path, capsys):
    (tmp_path / GROUND_TRUTH).write_text("image,MEL\n")
    code, _, stderr = run(["data", "synth", "--out", str(tmp_path), "--n", "5"], capsys)
    assert code == 2 and "not synthetic" in stderr


@pytest.mark.parametrize("how", ["file in the way", "read-only", "disk full"])
def test_synth_on_an_unwritable_out_is_one_sentence(tmp_path, capsys, monkeypatch, how):
    """Issue 13 item 12: a read-only --out ended in an OSError traceback."""
    import errno

    from PIL import Image

    out = tmp_path / "syn"
    if how == "file in the way":
        (tmp_path / "file").write_text("x")
        out, reason = tmp_path / "file" / "syn", "Not a directory"
    else:
        code = errno.EROFS if how == "read-only" else errno.ENOSPC
        reason = os.strerror(code)

        def fail(self, *args, **kwargs):
            raise OSError(code, reason)

        monkeypatch.setattr(Image.Image, "save", fail)
    code, out_text, err = run(["data", "synth", "--out", str(out), "--n", "3", "--image-size", "8"], capsys)
    assert code == 2 and out_text == ""
    assert err.strip() == f"error: {out}: cannot write the synthetic dataset there ({reason})"
