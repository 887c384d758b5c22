"""A search never loses a measured candidate: a full run folder, a full study disk, a process killed between
writing the files and recording the trial (in-process here; with real SIGKILLs in test_kill_windows.py)."""

from __future__ import annotations

import errno
import json

import pytest
from optuna.trial import TrialState
from sqlalchemy import event

from flnas.errors import FlnasError, StudyError
from flnas.space import load_choices
from flnas.study import recording
from flnas.study.export import export_candidate, select_candidate
from flnas.study.history import INTERRUPTED, trial_record
from flnas.study.loop import run_search
from flnas.study.storage import open_study, set_setup, storage_errors
from test_designers import TASK
from test_study_loop import FakeEvaluator, Scripted, spec_with


def search(study, designer, evaluator, *, iters=3, log=lambda _m: None, **kw):
    return run_search(
        study, designer=designer, evaluator=evaluator, task=TASK, choices=load_choices(None), iters=iters, log=log, **kw
    )


class Died(BaseException):
    """Stands for a SIGKILL: nothing after the point where it is raised runs."""


def _disk_full(monkeypatch, *, after: int = 0):
    """Every artifact file write fails with ENOSPC once ``after`` candidates' folders were written."""
    import flnas.evaluate.artifacts as artifacts

    real, calls = artifacts.write_json, {"metrics": 0}

    def write_json(path, obj):
        if path.name == "metrics.json":
            calls["metrics"] += 1
            if calls["metrics"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(artifacts, "write_json", write_json)


def test_full_out_keeps_the_measured_candidate_stops_and_is_not_retrained(tmp_path, monkeypatch):
    study = open_study("full", str(tmp_path / "s.db"))
    set_setup(study, {"classes": TASK.classes, "image_size": TASK.image_size})
    out, ev = tmp_path / "run", FakeEvaluator()
    _disk_full(monkeypatch, after=1)  # trial #0's files fit, trial #1's do not
    result = search(study, Scripted([spec_with(16), spec_with(32), spec_with(64)]), ev, out_dir=out)
    assert len(ev.calls) == 2 and result.new == [0, 1]  # stopped after the candidate that could not be written
    assert result.files_error and result.stopped == result.files_error
    assert "trial #1 was measured and its metrics are kept" in result.files_error
    assert (
        "No space left on device" in result.files_error and "flnas export --study full --trial 1" in result.files_error
    )
    second = study.get_trials()[1]
    assert second.state == TrialState.COMPLETE and second.user_attrs["status"] == "ok"
    assert second.user_attrs["metrics"]["val"]["accuracy"] == pytest.approx(0.532)
    assert "candidates/1: cannot write metrics.json" in second.user_attrs["record"]["artifacts_error"]
    assert "artifacts" not in second.user_attrs["record"]
    assert sorted(p.name for p in (out / "candidates").iterdir()) == ["0"]  # nothing partial left behind
    assert result.evaluated == 2  # counted: it is not trained again

    monkeypatch.undo()  # space was freed: the search goes on with iteration 3 only
    again = search(open_study("full", str(tmp_path / "s.db")), Scripted([spec_with(64)]), ev, out_dir=out)
    assert len(ev.calls) == 3 and again.new == [2] and again.evaluated == 3 and again.files_error is None
    assert sorted(p.name for p in (out / "candidates").iterdir()) == ["0", "2"]

    # its files come back from the study: the architecture and the metrics (the weights need --retrain)
    exported = export_candidate(study, select_candidate(study, number=1), tmp_path / "export")
    assert exported.source == "study" and exported.missing == ["model.pt", "model.onnx", "predictions.csv"]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["metrics.json", "model.py", "spec.json"]
    metrics = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == pytest.approx(0.532)
    assert json.loads((tmp_path / "export" / "spec.json").read_text()) == second.user_attrs["spec"]


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_training(tmp_path):
    study = open_study("ro", str(tmp_path / "s.db"))
    (tmp_path / "a-file").write_text("x")
    ev = FakeEvaluator()
    with pytest.raises(
        FlnasError, match=r"--out .*a-file/run: cannot write candidates' files there \(Not a directory\)"
    ):
        search(study, Scripted([spec_with(16)]), ev, out_dir=tmp_path / "a-file" / "run")
    assert ev.calls == [] and study.get_trials() == []


@pytest.mark.parametrize("point", ["writing", "files written", "recorded"])
def test_a_process_dying_around_the_files_never_leaves_a_partial_folder_or_retrains_a_recorded_one(
    tmp_path, monkeypatch, point
):
    """The three moments of item 10: while writing, after the files but before the study, after the study
    but before the rename. Only the first one (the result was not committed yet) trains it again."""
    import flnas.evaluate.artifacts as artifacts

    out, ev = tmp_path / "run", FakeEvaluator()
    study = open_study("kill", str(tmp_path / "s.db"))
    if point == "writing":
        monkeypatch.setattr(artifacts, "write_json", lambda path, obj: (_ for _ in ()).throw(Died()))
    elif point == "files written":
        monkeypatch.setattr(recording, "record_trial", lambda *a, **k: (_ for _ in ()).throw(Died()))
    else:
        monkeypatch.setattr(recording, "publish", lambda *a, **k: (_ for _ in ()).throw(Died()))
    with pytest.raises(Died):
        search(study, Scripted([spec_with(16)]), ev, out_dir=out, iters=1)
    assert not (out / "candidates" / "0").exists()  # never a partial candidates/<n>/
    staged = out / "candidates" / ".0.partial"
    assert staged.is_dir() and (staged / recording.PENDING).is_file() == (point != "writing")
    monkeypatch.undo()

    logs: list[str] = []
    study = open_study("kill", str(tmp_path / "s.db"))
    result = search(study, Scripted([spec_with(32)]), ev, out_dir=out, iters=1, log=logs.append)
    assert not staged.exists()
    trials = study.get_trials()
    if point == "writing":  # died before the result was committed: like a kill during training
        assert len(ev.calls) == 2 and result.new == [1]
        assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["reason"] == INTERRUPTED
        assert sorted(p.name for p in (out / "candidates").iterdir()) == ["1"]
        return
    assert len(ev.calls) == 1 and result.new == [] and result.evaluated == 1  # not trained again
    assert trials[0].state == TrialState.COMPLETE and trials[0].user_attrs["status"] == "ok"
    assert trials[0].values[0] == pytest.approx(0.516)
    assert (point == "files written") == any("trial #0 had finished" in m for m in logs)
    folder = out / "candidates" / "0"
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "model.py", "spec.json"]
    assert trial_record(study, 0)["artifacts"] == str(folder.absolute())


def test_a_full_study_disk_is_one_sentence_and_leaves_no_trial_running_as_ok(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("disk", url)
    engine = study._storage._backend.engine  # SQLite's max_page_count stands for the end of the disk
    limit = {}

    def no_new_pages(con, _record):
        con.execute(f"PRAGMA max_page_count = {limit['pages']}")

    class FillsTheDisk(FakeEvaluator):
        def evaluate(self, spec, **kw):  # the disk fills up while the candidate trains
            with engine.connect() as con:
                limit["pages"] = con.exec_driver_sql("PRAGMA page_count").scalar()
            event.listen(engine, "connect", no_new_pages)
            engine.dispose()
            result = super().evaluate(spec, **kw)
            result.metrics["padding"] = "x" * 20_000  # needs new pages
            return result

    with pytest.raises(StudyError) as exc, storage_errors(url):
        search(study, Scripted([spec_with(16)]), FillsTheDisk(), iters=1)
    message = str(exc.value)
    assert message.startswith(f"the disk holding the study database {tmp_path / 's.db'} is full")
    assert "\n" not in message and "exceeding max length" not in message
    event.remove(engine, "connect", no_new_pages)
    engine.dispose()

    again = open_study("disk", url)
    trial = again.get_trials()[0]
    assert trial.state == TrialState.RUNNING and trial.user_attrs["status"] != "ok"
    result = search(again, Scripted([spec_with(32)]), FakeEvaluator(), iters=1)  # a resume repairs it
    assert again.get_trials()[0].user_attrs["reason"] == INTERRUPTED and result.evaluated == 1
