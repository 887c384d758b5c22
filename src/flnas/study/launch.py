"""``--workers N`` on one machine: start N worker processes on one study and show one progress view.

Each worker is an ordinary search process (the same command, the same study and storage), so the
workers share the search exactly as processes started by hand do (:mod:`flnas.study.workers`). On a
machine with GPUs, worker ``i`` trains on ``cuda:i`` (one worker per GPU); on CPU the cores are split
between the workers (``OMP_NUM_THREADS``), since torch would otherwise give every worker every core and
they would slow each other down. Each worker writes its own log; this process reads the study (the one
state every worker writes) and prints a line per finished candidate, so the view is the same whether the
workers run here or elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flnas.errors import FlnasError

WORKER_LOG = "worker-{index}.log"  # in the run folder's workers/ folder
_STOP_WAIT = 30.0  # seconds a worker gets to finish its trial record after Ctrl-C before it is killed


@dataclass(frozen=True)
class WorkerSlot:
    """Where worker ``index`` (0-based) trains: a device (None: the command's own) and CPU threads (None: all)."""

    index: int
    device: str | None = None
    threads: int | None = None


@dataclass
class WorkersResult:
    """How the workers ended: exit codes by worker, the finished candidates seen, where the logs are."""

    codes: list[int]
    logs: list[Path]
    finished: int = 0  # search trials of the designer finished while the workers ran (any status)
    evaluated: int = 0  # evaluated candidates of iterations 1..iters at the end
    failed: list[int] = field(default_factory=list)  # indexes of workers that exited non-zero
    target: int | None = None  # iters x k (None: the study holds no IterMax yet)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def complete(self) -> bool:
        """Every worker exited 0 and the study holds IterMax evaluated candidates."""
        return self.ok and self.target is not None and self.evaluated >= self.target


def worker_slots(workers: int, device: str | None = None, *, gpus: int | None = None, cores: int | None = None
                 ) -> list[WorkerSlot]:
    """One slot per worker: ``cuda:0..N-1`` when there are GPUs (and ``device`` is auto or cuda), else a CPU share.

    ``gpus`` and ``cores`` default to this machine's (``torch.cuda.device_count()``, ``os.cpu_count()``).
    An explicit ``cuda:N`` puts every worker on that GPU; ``cpu`` splits the cores even where GPUs exist.
    """
    if workers < 1:
        raise FlnasError(f"--workers {workers}: pass at least 1")
    wanted = (device or "auto").lower()
    if gpus is None:
        gpus = _gpu_count() if wanted in ("auto", "cuda") else 0
    if wanted.startswith("cuda:"):
        return [WorkerSlot(i, device=wanted) for i in range(workers)]
    if wanted in ("auto", "cuda") and gpus > 0:
        if workers > gpus:
            raise FlnasError(
                f"--workers {workers}: this machine has {gpus} GPU(s) and each worker takes one; pass --workers "
                f"{gpus}, or --device cpu to train on the CPU"
            )
        return [WorkerSlot(i, device=f"cuda:{i}") for i in range(workers)]
    if wanted == "cuda":
        raise FlnasError("--device cuda: no CUDA GPU is visible on this machine; pass --device cpu")
    threads = max(1, (cores if cores is not None else os.cpu_count() or 1) // workers)
    return [WorkerSlot(i, device=device, threads=threads) for i in range(workers)]


def _gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # no usable CUDA: train on the CPU
        return 0


def run_workers(
    command: list[str],
    slots: list[WorkerSlot],
    *,
    study_name: str,
    storage: str,
    designer: str,
    iters: int | None,
    k: int,
    log_dir: Path,
    show: Callable[[str], None] = print,
    poll: float = 2.0,
    env: dict[str, str] | None = None,
) -> WorkersResult:
    """Run ``command`` once per slot (``--device`` appended where the slot names one) until every worker exits.

    Prints one line per finished candidate of ``designer`` (read from the study) and, at the end, each
    worker that failed with the path of its log. Ctrl-C stops the workers (each records its trial as
    interrupted) and is raised again.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / WORKER_LOG.format(index=slot.index) for slot in slots]
    procs: list[subprocess.Popen[bytes]] = []
    progress = _Progress(study_name, storage, designer, iters, k, show)
    try:
        for slot, log in zip(slots, logs, strict=True):
            args = command + (["--device", slot.device] if slot.device else [])
            child = {**os.environ, **(env or {})}
            if slot.threads:
                child.update(OMP_NUM_THREADS=str(slot.threads), MKL_NUM_THREADS=str(slot.threads))
            with open(log, "wb") as fh:
                procs.append(subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=child))
            where = slot.device or ("cpu" if slot.threads else "its default device")
            where += f", {slot.threads} thread(s)" if slot.threads else ""
            show(f"worker {slot.index} started (pid {procs[-1].pid}, {where}); its log: {log}")
        while any(p.poll() is None for p in procs):
            progress.update()
            time.sleep(poll)
    except BaseException:
        _stop(procs)
        raise
    progress.update()
    codes = [int(p.returncode) for p in procs]
    result = WorkersResult(codes=codes, logs=logs, finished=progress.finished, evaluated=progress.evaluated())
    iters = progress._iters()
    result.target = iters * k if iters else None
    result.failed = [slot.index for slot, code in zip(slots, codes, strict=True) if code != 0]
    for index in result.failed:
        show(f"worker {index} exited with code {codes[index]}: {_last_line(logs[index])} (its log: {logs[index]})")
    show(f"{result.evaluated}/{progress.target()} evaluated candidates; {len(slots) - len(result.failed)} of "
         f"{len(slots)} worker(s) finished cleanly")
    return result


def launch_search(
    command: list[str],
    workers: int,
    *,
    device: str | None,
    study_name: str,
    storage: str,
    designer: str,
    iters: int | None,
    k: int,
    out: Path,
    show: Callable[[str], None] = print,
    log_dir: Path | None = None,
) -> WorkersResult:
    """``flnas search --workers N``: run ``command`` (one search worker, without ``--workers``) N times here.

    ``iters`` None: the study's stored IterMax (read once the workers have written it). Worker logs go to
    ``log_dir`` (default ``out/workers/``).
    """
    from flnas.study.storage import sqlite_path, storage_url

    slots = worker_slots(workers, device)
    url = storage_url(storage)
    path = sqlite_path(url)
    if path is not None and workers > 1:
        show(f"note: {workers} workers share the SQLite file {path}, which is safe on one machine; for workers on "
             "several machines, or many of them, use PostgreSQL (docs/search.md, Workers)")
    return run_workers(command, slots, study_name=study_name, storage=url, designer=designer, iters=iters, k=k,
                       log_dir=log_dir or out / "workers", show=show)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl-C for every running worker (each records its trial as interrupted), then kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_WAIT
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


class _Progress:
    """Prints each newly finished search trial of one designer, read from the study the workers share."""

    def __init__(self, study_name: str, storage: str, designer: str, iters: int | None, k: int,
                 show: Callable[[str], None]) -> None:
        self.study_name, self.storage, self.designer = study_name, storage, designer
        self.iters, self.k, self.show = iters, k, show
        self.study: Any = None
        self.seen: set[int] = set()
        self.finished = 0

    def _open(self) -> Any:
        if self.study is None:
            from flnas.study.storage import open_study, sqlite_path, storage_url

            path = sqlite_path(storage_url(self.storage))
            if path is not None and not Path(path).exists():  # not created yet (and not by this reader)
                return None
            try:  # the first worker creates the study; until then there is nothing to show
                self.study = open_study(self.study_name, self.storage, create=False)
            except Exception:  # noqa: BLE001 - not there yet, or being created by a worker right now
                return None
        return self.study

    def candidates(self) -> list[Any]:
        from flnas.study.history import load_candidates

        study = self._open()
        if study is None:
            return []
        try:
            return [c for c in load_candidates(study) if c.designer == self.designer]
        except Exception:  # a busy database (SQLite under several writers): the next poll reads it
            return []

    def _iters(self) -> int | None:
        """IterMax: as given, or the study's stored setting (written by the first worker)."""
        if self.iters is None and self._open() is not None:
            from flnas.study.storage import get_search_settings

            stored = get_search_settings(self.study).get("iters")
            self.iters = int(stored) if stored else None
        return self.iters

    def target(self) -> str:
        iters = self._iters()
        return str(iters * self.k) if iters else "?"

    def evaluated(self) -> int:
        from flnas.records import is_evaluated

        iters = self._iters() or 0
        return sum(1 for c in self.candidates() if is_evaluated(c) and 1 <= c.iteration <= iters)

    def update(self) -> None:
        from flnas.records import is_evaluated

        candidates = self.candidates()
        iters = self._iters() or 0
        counted = {c.number for c in candidates if is_evaluated(c) and 1 <= c.iteration <= iters}
        for c in candidates:  # oldest first: the count grows line by line
            if c.status == "running" or c.number in self.seen:
                continue
            self.seen.add(c.number)
            self.finished += 1
            self.show(f"[{len(counted & self.seen)}/{self.target()}] {describe(c)}")


def describe(candidate: Any) -> str:
    """One line for a finished candidate: trial, iteration, status, and its validation figures or why not."""
    head = f"trial #{candidate.number} (iteration {candidate.iteration}): {candidate.status}"
    val = ((candidate.metrics or {}).get("val") or {}) if candidate.status == "ok" else {}
    if val:
        label, acc = ("balanced acc", val["balanced_accuracy"]) if val.get("balanced_accuracy") is not None else (
            "acc", val.get("accuracy"))
        parts = [f"val {label} {100 * acc:.2f}%" if acc is not None else None]
        if val.get("unfairness") is not None:
            parts.append(f"unfairness {val['unfairness']:.4f}")
        if (candidate.metrics or {}).get("params") is not None:
            parts.append(f"params {int(candidate.metrics['params']):,}")
        return f"{head} -- {', '.join(p for p in parts if p)}"
    return f"{head} -- {candidate.reason}" if candidate.reason else head
