"""Faults of the study's database and the run folder seen from the command line: one sentence, no traceback,
nothing lost, and never a write into a damaged study."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import sqlite3
import sys

import pytest
import sqlalchemy.exc
from optuna.trial import TrialState
from sqlalchemy import event

from flnas.cli.main import main
from flnas.errors import StudyError
from flnas.study.storage import open_study, storage_errors


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _damaged_study(path) -> str:
    """A study with 40 trials whose middle database page was overwritten; returns the file's hash."""
    study = open_study("hurt", str(path))
    for i in range(40):
        trial = study.ask()
        trial.set_user_attr("metrics", {"padding": "v" * 3000, "i": i})
        study.tell(trial, [0.5, 0.1, 100])
    study._storage._backend.engine.dispose()
    with sqlite3.connect(path) as con:
        page_size, pages = con.execute("PRAGMA page_size").fetchone()[0], con.execute("PRAGMA page_count").fetchone()[0]
    with open(path, "r+b") as fh:
        fh.seek(page_size * (pages // 2))
        fh.write(random.Random(0).randbytes(page_size))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_study_is_refused_by_every_command_and_never_written(tmp_path, capsys):
    db = tmp_path / "s.db"
    digest = _damaged_study(db)
    with pytest.raises(StudyError, match=r"s\.db is damaged .*flnas will not write into it"):
        open_study("hurt", str(db))
    for argv in (
        ["search", "--study", "hurt", "--storage", str(db), "--designer", "random", "--iters", "1"],
        ["prompt", "--study", "hurt", "--storage", str(db)],
        ["export", "--study", "hurt", "--storage", str(db), "--trial", "0", "--out", str(tmp_path / "x")],
    ):
        code, out, err = run(argv, capsys)
        assert code == 2 and "Traceback" not in out + err, err
        assert err.startswith(f"error: the study database {db} is damaged"), err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # not a byte written
    assert not (tmp_path / "x").exists()


def test_storage_failures_while_running_are_one_sentence(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    malformed = sqlalchemy.exc.DatabaseError("SELECT 1", {}, sqlite3.DatabaseError("database disk image is malformed"))
    with pytest.raises(StudyError, match=r"s\.db is damaged \(.*malformed"), storage_errors(url):
        raise malformed
    full = sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    with pytest.raises(StudyError, match=r"the disk holding the study database .*s\.db is full"), storage_errors(url):
        raise full
    with pytest.raises(ValueError), storage_errors(url):  # not a storage problem: left alone
        raise ValueError("x")


SEARCH = ["search", "--designer", "random", "--iters", "1", "--image-size", "32", "--epochs", "1", "--no-hardware"]


def test_a_full_out_disk_keeps_the_candidate_then_resume_and_export_rebuild_its_files(
    synth_dir, tmp_path, capsys, monkeypatch
):
    import flnas.evaluate.artifacts as artifacts

    monkeypatch.chdir(tmp_path)
    db, out = tmp_path / "s.db", tmp_path / "run"
    argv = [*SEARCH, "--data", str(synth_dir), "--study", "full", "--storage", str(db), "--out", str(out)]

    def no_space(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(artifacts, "write_json", no_space)
        code, out_text, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in out_text + err and "shutil" not in err, err
    last = err.strip().splitlines()[-1]  # the lines above are training progress
    assert last.startswith("error: trial #0 was measured and its metrics are kept in the study"), err
    assert "run/candidates/0: cannot write spec.json (No space left on device)" in last
    assert "error" not in err.replace(last, "") and "exported to" not in out_text  # no best export into it
    trial = open_study("full", str(db)).get_trials()[0]
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["status"] == "ok"
    assert sorted(os.listdir(out / "candidates")) == []

    code, out_text, err = run(["export", "--study", "full", "--storage", str(db), "--trial", "0", "--out", "x"], capsys)
    assert code is None or code == 0, err
    assert "rebuilt from the study" in out_text and "add --retrain" in err
    assert sorted(os.listdir(tmp_path / "x")) == ["metrics.json", "model.py", "spec.json"]

    code, out_text, err = run(argv, capsys)  # space is back: nothing is trained again, best/ is rebuilt
    assert code == 0, err
    assert "1/1 evaluated candidates; 0 new trial(s)" in out_text
    assert "OptDNN (trial #0) retrained with the study's seed and exported to" in out_text
    assert {"model.pt", "model.onnx", "predictions.csv", "spec.json", "metrics.json"} <= set(os.listdir(out / "best"))

    argv_export = ["export", "--study", "full", "--storage", str(db), "--best", "--retrain", "--out", "x"]
    code, out_text, err = run(argv_export, capsys)
    assert code in (None, 0) and "retrained with the study's seed" in out_text, err
    assert {"model.pt", "model.onnx", "predictions.csv"} <= set(os.listdir(tmp_path / "x"))


def test_a_full_study_disk_during_a_search_is_one_sentence(synth_dir, tmp_path, capsys, monkeypatch):
    from flnas.study import recording

    db = tmp_path / "s.db"
    argv = [*SEARCH, "--data", str(synth_dir), "--study", "disk", "--storage", str(db), "--out", str(tmp_path / "r")]
    real = recording.record_trial

    def disk_fills_up(study, trial, *args, **kw):
        engine = study._storage._backend.engine
        with engine.connect() as con:
            pages = con.exec_driver_sql("PRAGMA page_count").scalar()
        event.listen(engine, "connect", lambda con, _r: con.execute(f"PRAGMA max_page_count = {pages}"))
        engine.dispose()
        return real(study, trial, *args, **kw)

    monkeypatch.setattr(recording, "record_trial", disk_fills_up)
    code, out, err = run(argv, capsys)
    assert code == 2 and "Traceback" not in out + err, err
    assert err.strip().splitlines()[-1] + "\n" == (
        f"error: the disk holding the study database {db} is full; free some space there (or pass another "
        "--storage) and run the command again -- results recorded so far are kept\n"
    )
    monkeypatch.undo()
    trial = open_study("disk", str(db)).get_trials()[0]
    assert trial.state == TrialState.RUNNING and trial.user_attrs["status"] != "ok"
    staged = tmp_path / "r" / "candidates" / ".0.partial"
    assert (staged / recording.PENDING).is_file()  # the result waits there for the next run

    code, out, err = run(argv, capsys)  # space is back: the result is recorded, not trained again
    assert code == 0, err
    assert "trial #0 had finished before the last run stopped" in out and "0 new trial(s)" in out
    assert open_study("disk", str(db)).get_trials()[0].user_attrs["status"] == "ok"


def test_any_command_turns_a_storage_failure_into_one_sentence(tmp_path, capsys, monkeypatch):
    """A safety net under every command (report, baselines, experiment, prompt): no traceback."""
    import optuna

    import flnas.study.history as history

    open_study("s", str(tmp_path / "s.db"))

    def full(*_a, **_k):
        try:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
        except sqlalchemy.exc.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("invalid data ... exceeding max length") from exc

    monkeypatch.setattr(history, "load_candidates", full)
    code, out, err = run(["prompt", "--study", "s", "--storage", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith("error: the disk holding the study database (--storage) is full;") and err.count("\n") == 1


def test_a_best_export_into_a_full_disk_is_one_sentence(synth_dir, tmp_path, capsys, monkeypatch):
    import shutil

    import flnas.study.export as export

    out = tmp_path / "run"
    argv = [*SEARCH, "--data", str(synth_dir), "--study", "b", "--storage", str(tmp_path / "s.db"), "--out", str(out)]

    def no_space(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(export.shutil, "copyfile", no_space)
    code, text, err = run(argv, capsys)
    assert code == 2 and "Traceback" not in text + err and "shutil.Error" not in err, err
    assert (
        err.strip().splitlines()[-1]
        == f"error: {out / 'best'}: cannot write the exported files (No space left on device)"
    )
    assert sorted(os.listdir(out)) == ["candidates"] and shutil.os.listdir(out / "candidates") == ["0"]


@pytest.mark.parametrize(
    ("url", "driver", "says"),
    [
        ("mysql+pymysql://flnas:pw@dbhost/flnas", "pymysql", "pip install 'flnas[mysql]'"),
        ("mysql://flnas:pw@dbhost/flnas", "MySQLdb", "write the URL as mysql+pymysql://"),
        ("mariadb://flnas:pw@dbhost/flnas", "MySQLdb", "write the URL as mysql+pymysql://"),
        ("postgresql+psycopg2://flnas:pw@dbhost/flnas", "psycopg2", "pip install 'flnas[postgres]'"),
        ("postgresql://flnas:pw@dbhost/flnas", "psycopg", "write the URL as postgresql+psycopg2://"),
    ],
    ids=["mysql+pymysql", "mysql", "mariadb", "postgresql+psycopg2", "postgresql"],
)
def test_a_missing_database_driver_is_one_sentence_naming_the_extra(url, driver, says, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, driver, None)  # `import driver` fails as if it were not installed
    with pytest.raises(StudyError, match=re.escape(says)):
        open_study("s", url)
    code, out, err = run(["prompt", "--study", "s", "--storage", url], capsys)
    assert code == 2 and "Traceback" not in out + err and "pw" not in err
    assert err.startswith("error: ") and says in err and err.count("\n") == 1
