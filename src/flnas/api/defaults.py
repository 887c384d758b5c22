"""The defaults of the search, the experiment and the report, in one place.

The command line (its options and their help), the Python API (its keyword arguments) and bench/ read
them from here, so a default changes in one line. The selection rule's defaults are the records' (the
loop needs them too); this module imports nothing heavier (``flnas --help`` reads it), so the study name
of :mod:`flnas.study.storage` and the heartbeat settings of :mod:`flnas.study.workers`, which import Optuna,
are repeated here and checked equal by tests/test_assembly.py.
"""

from __future__ import annotations

from flnas.records import DEFAULT_RULE, DEFAULT_TOLERANCE

SELECTION = DEFAULT_RULE  # GetBestMetrics rule ("fair")
TOLERANCE = DEFAULT_TOLERANCE  # accuracy tolerance of the fair/params/balanced rules
SELECTION_RULES = "fair | accuracy | unfairness | params | weighted | balanced"
CANDIDATES = 1  # k, candidates per iteration
HEARTBEAT_INTERVAL = 20  # seconds between a worker's heartbeats
GRACE_PERIOD = 120  # seconds without one after which a worker is taken for dead

# `flnas search`: with --data, and the embedded default (no --data: ~3 minutes on 2 CPU cores)
STUDY = "flnas"
STUDY_EMBEDDED = "flnas-default"
REAL = {"iters": 10, "image_size": 64}
EMBEDDED = {"iters": 5, "image_size": 32, "epochs": 4, "patience": 2}

# `flnas evaluate`
EVALUATE = {"image_size": 64, "seed": 0, "device": "auto"}

# `flnas baselines`, `flnas report`, `flnas experiment`
IMAGE_SIZE = 64  # a new study's image size when these commands create it
MODELS = "resnet18,resnet34,mobilenetv1,mobilenetv2"
FORMATS = "terminal,md,csv,tex,html,png"
TOP = 3
REPEATS = 0
BASELINES_STUDY = "flnas"
EXPERIMENT = {"iters": 10, "study": "experiment", "out": "flnas-experiment"}


def default_designer(llm_base_url: str | None = None, *, embedded: bool = False) -> tuple[str, str]:
    """(designer, why): the LLM when an endpoint is configured, else the heuristic.

    ``embedded`` (the search's embedded default, no --data) always takes the heuristic, so the first run
    of `flnas search` needs no endpoint.
    """
    from flnas.designers.llm import is_configured

    if embedded:
        return "heuristic", "the embedded default"
    if is_configured(llm_base_url):
        return "llm", "an LLM endpoint is set"
    return "heuristic", "no LLM endpoint is set"
