"""``--workers N`` on one machine: where each worker trains, the shared progress view, failed workers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flnas.errors import FlnasError
from flnas.records import is_evaluated
from flnas.study.history import load_candidates
from flnas.study.launch import WorkerSlot, launch_search, run_workers, worker_slots
from flnas.study.storage import open_study

WORKER = Path(__file__).parent / "flnas_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"


def test_one_worker_per_gpu_and_the_cores_split_on_cpu():
    assert worker_slots(2, None, gpus=4) == [WorkerSlot(0, "cuda:0"), WorkerSlot(1, "cuda:1")]
    assert worker_slots(2, "cuda", gpus=2) == [WorkerSlot(0, "cuda:0"), WorkerSlot(1, "cuda:1")]
    assert worker_slots(3, "cuda:1", gpus=2) == [WorkerSlot(i, "cuda:1") for i in range(3)]
    assert worker_slots(2, None, gpus=0, cores=8) == [WorkerSlot(0, None, 4), WorkerSlot(1, None, 4)]
    assert worker_slots(2, "cpu", gpus=2, cores=8) == [WorkerSlot(0, "cpu", 4), WorkerSlot(1, "cpu", 4)]
    assert [s.threads for s in worker_slots(4, None, gpus=0, cores=2)] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("workers", "device", "gpus", "says"),
    [
        (0, None, 0, "--workers 0: pass at least 1"),
        (3, None, 2, "--workers 3: this machine has 2 GPU(s) and each worker takes one; pass --workers 2"),
        (2, "cuda", 0, "--device cuda: no CUDA GPU is visible on this machine; pass --device cpu"),
    ],
)
def test_worker_slots_refuse_what_cannot_run(workers, device, gpus, says):
    with pytest.raises(FlnasError) as exc:
        worker_slots(workers, device, gpus=gpus, cores=2)
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_two_workers_share_one_search_and_one_progress_view(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    command = [sys.executable, str(WORKER), url, "launched", "3", "1", str(tmp_path / "trained.jsonl")]
    env = {"PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    shown: list[str] = []
    slots = worker_slots(2, None, gpus=0, cores=2)
    result = run_workers(command, slots, study_name="launched", storage=url, designer="random", iters=3, k=1,
                         log_dir=tmp_path / "workers", show=shown.append, poll=0.2, env=env)
    assert result.codes == [0, 0] and result.ok and result.evaluated == 3 and result.complete
    candidates = [c for c in load_candidates(open_study("launched", url, create=False)) if is_evaluated(c)]
    assert len(candidates) == 3
    finished = [line for line in shown if line.startswith("[")]
    assert len(finished) == 3 and all(": ok -- val balanced acc" in line for line in finished), shown
    assert sorted(int(line.split("#")[1].split()[0]) for line in finished) == [c.number for c in candidates]
    for log in result.logs:  # each worker ran the search with its share of the cores
        text = log.read_text()
        assert "RESULT 3/3" in text and "threads=1" in text, text
    assert shown[-1] == "3/3 evaluated candidates; 2 of 2 worker(s) finished cleanly"


def test_a_failed_worker_is_named_with_its_last_line_and_log(tmp_path):
    code = "import sys; print('ready'); print('it broke'); sys.exit(3 if sys.argv[-1] == 'bad' else 0)"
    shown: list[str] = []
    result = run_workers([sys.executable, "-c", code], [WorkerSlot(0, "good"), WorkerSlot(1, "bad")],
                         study_name="none", storage=f"sqlite:///{tmp_path / 'none.db'}", designer="random",
                         iters=1, k=1, log_dir=tmp_path / "w", show=shown.append, poll=0.05)
    assert result.codes == [0, 3] and result.failed == [1] and not result.ok
    log = tmp_path / "w" / "worker-1.log"
    assert f"worker 1 exited with code 3: it broke (its log: {log})" in shown
    assert not (tmp_path / "none.db").exists()  # the progress view never creates a study


def test_several_workers_on_a_sqlite_file_get_one_sentence_naming_postgresql(tmp_path):
    shown: list[str] = []
    db = tmp_path / "s.db"
    result = launch_search([sys.executable, "-c", "pass"], 2, device="cpu", study_name="s", storage=str(db),
                           designer="random", iters=None, k=1, out=tmp_path / "run", show=shown.append)
    assert result.ok and not result.complete  # the workers exited 0, but there is no search
    assert [log.parent for log in result.logs] == [tmp_path / "run" / "workers"] * 2
    note = [line for line in shown if line.startswith("note:")]
    assert note == [f"note: 2 workers share the SQLite file {db}, which is safe on one machine; for workers on "
                    "several machines, or many of them, use PostgreSQL (docs/search.md, Workers)"]
    assert shown[-1] == "0/? evaluated candidates; 2 of 2 worker(s) finished cleanly"  # no study: IterMax unknown
