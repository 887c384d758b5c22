"""Scale-out: 1, 2 and 4 ``flnas search`` workers on one study, SQLite and PostgreSQL.

Each run starts N real ``flnas search`` processes on one fresh study through the package's launcher
(``flnas.study.launch.run_workers``, what ``--workers N`` does: the CPU cores split between the workers) with
the random designer on the embedded synthetic data (tiny images, one epoch), and reads the study back:

- wall time from the launch to IterMax (the last evaluated candidate's completion) and to the last worker's exit;
- evaluated candidates (must be ``iters``), duplicate specs among them (must be 0), lost trials (left
  RUNNING or interrupted; must be 0 with no worker killed), invalid trials (must be 0: a spec another worker
  took meanwhile is designed again, counted as ``redesigns``), and how many candidates each worker trained;
- the load average while it ran (sampled every second), since on a shared machine that decides the figures.

PostgreSQL (and MariaDB for ``mysql`` runs, e.g. ``--runs mysql:2``) is started the way the tests start it
(tests/db_servers.py: a throw-away server on a unix socket, as ``nobody`` when run as root); without it only
the SQLite runs are made, saying why.

    .venv/bin/python bench/scale_out.py                      # BENCHMARKS.md (iters 8)
    .venv/bin/python bench/scale_out.py --quick              # 2 iterations, 2 workers on SQLite
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import REPO_ROOT, emit_json, fmt, load_average, machine_info, print_machine, table  # noqa: E402

DEFAULT_RUNS = "sqlite:1,postgresql:1,postgresql:1:1,postgresql:2,postgresql:4"
QUICK_RUNS = "sqlite:2"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=None,
                    help=f"storage:workers[:threads each],... (storage: sqlite, postgresql or mysql; default "
                         f"{DEFAULT_RUNS}; threads: the cores split)")
    ap.add_argument("--iters", type=int, default=None, help="IterMax of each search (default 8; --quick 2)")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--cores", type=int, default=None, help="cores the launcher splits (default: os.cpu_count())")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 iterations, SQLite only")
    ap.add_argument("--keep", type=Path, default=None, help="keep the studies and worker logs in this folder")
    args = ap.parse_args(argv)
    args.runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    args.iters = args.iters or (2 if args.quick else 8)
    return args


class LoadSampler:
    """The 1-minute load average every second while a run lasts (its mean and max are reported)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            load = load_average()
            if load:
                self.samples.append(load[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"mean": None, "max": None}
        return {"mean": statistics.fmean(self.samples), "max": max(self.samples)}


def one_run(url: str, workers: int, args: argparse.Namespace, folder: Path, name: str, threads: int | None = None
            ) -> dict[str, Any]:
    """Run ``workers`` workers on a fresh study at ``url``; return the figures read back from the study."""
    from flnas.study.launch import run_workers, worker_slots

    command = [sys.executable, "-m", "flnas", "search", "--designer", "random", "--iters", str(args.iters),
               "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--no-hardware",
               "--study", name, "--storage", url, "--out", str(folder / "out"), "--seed", "0"]
    env = {"PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    slots = worker_slots(workers, "cpu", cores=threads * workers if threads else args.cores)
    shown: list[str] = []
    launched = datetime.now()
    start = time.perf_counter()
    with LoadSampler() as load:
        result = run_workers(command, slots, study_name=name, storage=url, designer="random", iters=args.iters,
                             k=1, log_dir=folder / "workers", show=shown.append, poll=1.0, env=env)
    wall = time.perf_counter() - start
    figures = read_back(url, name, args.iters, launched)
    figures.update(workers=workers, storage=url.split(":", 1)[0].split("+")[0], exit_codes=result.codes,
                   wall_s=wall, load=load.summary(), threads_per_worker=slots[0].threads)
    if not result.ok:
        figures["failed_logs"] = [str(result.logs[i]) for i in result.failed]
    return figures


def read_back(url: str, name: str, iters: int, launched: datetime) -> dict[str, Any]:
    """Evaluated, duplicates, lost, invalid, redesigns, per-worker shares and time to IterMax from the study."""
    from optuna.trial import TrialState

    from flnas.records import is_evaluated
    from flnas.study.history import candidate_from_trial
    from flnas.study.storage import open_study

    trials = [t for t in open_study(name, url, create=False).get_trials() if t.user_attrs.get("kind") == "search"]
    candidates = {t.number: candidate_from_trial(t) for t in trials}
    evaluated = [t for t in trials
                 if is_evaluated(candidates[t.number]) and 1 <= candidates[t.number].iteration <= iters]
    keys = Counter(t.user_attrs.get("spec_key") for t in evaluated)
    lost = [t.number for t in trials
            if t.state == TrialState.RUNNING or (candidates[t.number].reason or "").startswith("interrupted")]
    owners = Counter(str(((t.user_attrs.get("record") or {}).get("owner") or {}).get("pid")) for t in evaluated)
    done = [t.datetime_complete for t in evaluated if t.datetime_complete is not None]
    to_itermax = (max(done) - launched).total_seconds() if len(evaluated) >= iters and done else None
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    train = [float((t.user_attrs.get("record") or {}).get("eval_seconds") or 0) for t in evaluated]
    return {
        "evaluated": len(evaluated),
        "duplicates": sum(n - 1 for n in keys.values()),
        "lost": len(lost),
        "invalid": sum(1 for c in candidates.values() if c.status == "invalid"),
        "redesigns": sum(int((t.user_attrs.get("record") or {}).get("redesigns") or 0) for t in trials),
        "per_worker": sorted(owners.values(), reverse=True),
        "to_itermax_s": to_itermax,
        "first_claim_s": (min(starts) - launched).total_seconds() if starts else None,  # start-up + data
        "train_s_mean": statistics.fmean(train) if train else None,  # seconds per candidate, as measured
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    machine = machine_info()
    print_machine(machine)
    runs = [(fields[0], int(fields[1]), int(fields[2]) if len(fields) > 2 else None)
            for fields in (part.split(":") for part in args.runs.split(","))]
    rows: list[dict[str, Any]] = []
    skipped: str | None = None
    with contextlib.ExitStack() as stack:
        base = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flnas-scale-")))
        servers: dict[str, Any] = {}  # kind -> a running db_servers.Server
        for kind in sorted({kind for kind, *_ in runs if kind != "sqlite"}):
            from db_servers import Unavailable, running_server

            try:
                servers[kind] = stack.enter_context(running_server(kind))
            except Unavailable as exc:
                skipped = "; ".join(filter(None, [skipped, f"{kind} runs skipped: {exc}"]))
                print(f"{kind} runs skipped: {exc}")
        if not args.quick:  # untimed: the data cache and the OS file cache are warm for every timed run
            print("warm-up (1 worker, 1 iteration, not reported) ...", flush=True)
            one_run(f"sqlite:///{base / 'warmup.db'}", 1, argparse.Namespace(**{**vars(args), "iters": 1}),
                    base / "warmup", "warmup")
        for index, (kind, workers, threads) in enumerate(runs):
            if kind != "sqlite" and kind not in servers:
                continue
            folder = base / f"run{index}-{kind}-{workers}"
            folder.mkdir(parents=True, exist_ok=True)
            if kind != "sqlite":
                url = servers[kind].new_database()
            else:
                url = f"sqlite:///{folder / 'study.db'}"
            print(f"{kind}, {workers} worker(s), {args.iters} iterations ...", flush=True)
            rows.append(one_run(url, workers, args, folder, f"scale{index}", threads))
    header = ["storage", "workers", "threads each", "to IterMax s", "wall s", "first claim s", "train s/cand",
              "evaluated", "duplicates", "lost", "invalid", "redesigns", "per worker", "load mean/max"]
    body = []
    for row in rows:
        load = row["load"]
        body.append([row["storage"], str(row["workers"]), str(row["threads_per_worker"]),
                     f"{row['to_itermax_s']:.1f}" if row["to_itermax_s"] is not None else "n/a",
                     f"{row['wall_s']:.1f}", fmt(row["first_claim_s"], 1), fmt(row["train_s_mean"], 1),
                     f"{row['evaluated']}/{args.iters}", str(row["duplicates"]),
                     str(row["lost"]), str(row["invalid"]), str(row["redesigns"]),
                     "+".join(str(n) for n in row["per_worker"]),
                     f"{load['mean']:.1f}/{load['max']:.1f}" if load["mean"] is not None else "n/a"])
    print(table(body, header))
    figures = {
        "iters": args.iters,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "runs": rows,
        "all_complete": all(r["evaluated"] == args.iters for r in rows),
        "no_duplicates": all(r["duplicates"] == 0 for r in rows),
        "nothing_lost": all(r["lost"] == 0 for r in rows),
        "no_invalid": all(r["invalid"] == 0 for r in rows),
        "workers_ok": all(code == 0 for r in rows for code in r["exit_codes"]),
    }
    emit_json("scale_out", figures, machine=machine, extra={"skipped": skipped})
    return figures


if __name__ == "__main__":
    main()
