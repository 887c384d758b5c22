"""One search worker for the worker tests: ``python flnas_worker.py URL STUDY ITERS K TRAINED_LOG [HANG_MARKER]``.

Runs :func:`flnas.study.loop.run_search` with the random designer (``FLNAS_TEST_DESIGNER``: another) and
a fake evaluator that takes ``FLNAS_TEST_SECONDS`` (0.3) per candidate and appends each spec it trains to
TRAINED_LOG (one JSON line), so a test can tell what every worker trained. With HANG_MARKER, the first
candidate writes that file and then hangs (the test kills the process there: a worker dying in the middle
of a candidate). Heartbeat 1 s; grace ``FLNAS_TEST_GRACE`` s (default 60, so that a live worker on a busy
machine is never taken for dead; the test that kills a worker sets a shorter one). With
``FLNAS_TEST_BARRIER=DIR:N``, a worker starts its search only when N workers have started (up to 120 s),
so that sharing the work does not depend on start-up times.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))

from flnas.designers.registry import create_designer  # noqa: E402
from flnas.space import load_choices, spec_key  # noqa: E402
from flnas.study.loop import run_search  # noqa: E402
from flnas.study.storage import open_study  # noqa: E402
from flnas.study.workers import Liveness  # noqa: E402
from test_designers import TASK  # noqa: E402


class SlowFake:
    def __init__(self, trained: Path, hang: Path | None) -> None:
        self.trained, self.hang = trained, hang
        self.seconds = float(os.environ.get("FLNAS_TEST_SECONDS", "0.3"))

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        with open(self.trained, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": spec_key(spec), "pid": os.getpid(), "name": name}) + "\n")
        if self.hang is not None:
            self.hang.write_text(name or "")
            time.sleep(600)
        time.sleep(self.seconds)
        acc = 0.5 + (len(spec_key(spec)) % 97) / 1000
        val = {"accuracy": acc, "balanced_accuracy": acc, "unfairness": 0.01, "groups": {}}
        return SimpleNamespace(status="ok", reason=None, metrics={"params": 1000, "val": val})


def _barrier() -> None:
    """``FLNAS_TEST_BARRIER=DIR:N``: start the search only when N workers have got here (started together)."""
    spec = os.environ.get("FLNAS_TEST_BARRIER")
    if not spec:
        return
    folder, count = spec.rsplit(":", 1)
    (Path(folder) / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
        time.sleep(0.05)


def main(url: str, study_name: str, iters: str, k: str, trained: str, hang: str | None = None) -> None:
    print(f"worker threads={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    _barrier()
    grace = int(os.environ.get("FLNAS_TEST_GRACE", "60"))
    study = open_study(study_name, url, liveness=Liveness(heartbeat=1, grace=grace))
    result = run_search(
        study,
        designer=create_designer(os.environ.get("FLNAS_TEST_DESIGNER", "random")),
        evaluator=SlowFake(Path(trained), Path(hang) if hang else None),
        task=TASK,
        choices=load_choices(None),
        iters=int(iters),
        k=int(k),
        log=lambda m: print(m, flush=True),
        poll=0.5,
    )
    print(f"RESULT {result.evaluated}/{result.target} new={result.new} redesigns={result.redesigns}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
