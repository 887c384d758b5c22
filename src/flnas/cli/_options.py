"""Command-line options shared by `evaluate`, `search`, `baselines` and `experiment`.

Every command that trains candidates takes the same evaluator flags, so they are declared once here as
``Annotated`` aliases (``epochs: Epochs = None``). A command keeps its own default by the value it assigns;
defaults that are stated in the help text are not repeated by typer (``show_default=False``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flnas.api import defaults
from flnas.api.options import train_overrides  # noqa: F401  (the commands' evaluator settings)

# Numbers out of range are usage errors (exit 2) named by the option parser: `--patience -1` never reaches a
# run. A zero learning rate or time budget passes the bound and is refused by the evaluator's config check.
SEED_MAX = 2**32 - 1  # numpy and torch both take it; torch refuses seeds of 2**64 and more

# where the data comes from
Data = Annotated[
    Path | None, typer.Option(
        "--data", help="Dataset card (YAML/JSON), folder with flnas.yaml, or ISIC 2019 folder; omitted: the embedded "
        "synthetic set."
    )
]
Subset = Annotated[
    int | None, typer.Option("--subset", min=1, help="Use N records (balanced over groups; the paper: 5000).")
]
ImageSize = Annotated[
    int | None,
    typer.Option("--image-size", min=8, max=1024, help="Square input size in pixels (default 64).", show_default=False),
]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed",
        min=0,
        max=SEED_MAX,
        help="Seed for the split, weight init and batches (default 0).",
        show_default=False,
    ),
]
CacheDir = Annotated[Path | None, typer.Option("--cache-dir", help="Decoded-image cache directory.")]
ChoicesPath = Annotated[Path | None, typer.Option("--choices", help="Choices file (JSON/YAML).")]
Env = Annotated[
    str | None, typer.Option("--env", help="Target device shown to the designer (default Raspberry Pi 4).")
]

# the evaluator (EvaluatorConfig fields)
Epochs = Annotated[int | None, typer.Option("--epochs", min=1, help="Maximum epochs (default 30).")]
Patience = Annotated[int | None, typer.Option("--patience", min=0, help="Early-stopping patience (default 3).")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, help="Batch size (default 64).")]
Lr = Annotated[float | None, typer.Option("--lr", min=0, help="Learning rate (default 1e-3).")]
Device = Annotated[
    str | None,
    typer.Option("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:N.", show_default=False),
]
MaxTrainSeconds = Annotated[
    float | None,
    typer.Option("--max-train-seconds", min=0, help="Time budget per candidate; over it the candidate fails."),
]
NoHardware = Annotated[bool, typer.Option("--no-hardware", help="Skip FLOPs/memory/latency/ONNX.")]
ClassWeighted = Annotated[
    bool | None,
    typer.Option(
        "--class-weighted/--no-class-weighted",
        help="Weight the training loss by inverse class frequency (for imbalanced data such as ISIC). "
        "Default: on for a new study; a resumed study keeps its own. The paper's preset: "
        "--accuracy plain --no-class-weighted.",
        show_default=False,
    ),
]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Training arithmetic: fp32 (default for a new study; a resumed one keeps its own), bf16 (bfloat16 "
        "autocast; fast where the CPU has avx512_bf16 or AMX, or on an Ampere or newer GPU), fp16 (float16 autocast "
        "with a gradient scaler; CUDA only) or auto (bf16 where native, else fp32). Latency and ONNX export stay "
        "fp32. Stored in a study's setup.",
        show_default=False,
    ),
]
ChannelsLast = Annotated[
    bool | None,
    typer.Option(
        "--channels-last/--no-channels-last",
        help="Train in the channels_last (NHWC) memory format. Default: on under bf16/fp16 (faster there), off in fp32 "
        "(keeps fp32 results bit for bit); a resumed study keeps its own. Stored in a study's setup.",
        show_default=False,
    ),
]
ClassWeightedOff = Annotated[
    bool | None,
    typer.Option(
        "--class-weighted/--no-class-weighted",
        help="Weight the training loss by inverse class frequency (default off here; on in new studies).",
        show_default=False,
    ),
]
Accuracy = Annotated[
    str | None,
    typer.Option(
        "--accuracy",
        help="The study's accuracy of record: balanced (mean per-class recall; default for a new study) or "
        "plain (the paper's; a study from before this option keeps plain). It drives the objective, "
        "every selection rule, the designers' best so far and Table I's marks; both are always reported.",
        show_default=False,
    ),
]

# the study
Storage = Annotated[
    str | None, typer.Option("--storage", help="SQLAlchemy URL or SQLite file (default ./flnas.db).")
]
HeartbeatInterval = Annotated[
    int,
    typer.Option(
        "--heartbeat-interval",
        help="Seconds between a worker's heartbeats on its running trial (workers: docs/search.md).",
    ),
]
GracePeriod = Annotated[
    int,
    typer.Option(
        "--grace-period",
        help="Seconds without a heartbeat after which another worker takes a trial's worker for dead and "
        "trains its candidate again.",
    ),
]

Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        help="Start N worker processes on this machine for this study: one per GPU (cuda:0..N-1) when there are "
        "GPUs, else the CPU cores split between them; one progress view, each worker's log in the run folder "
        "(docs/search.md, Workers).",
    ),
]

# the search (defaults: flnas.api.defaults)
Selection = Annotated[
    str, typer.Option("--selection", help=f"GetBestMetrics rule: {defaults.SELECTION_RULES}.")
]
Tolerance = Annotated[float, typer.Option("--tolerance", help="Accuracy tolerance (fair/params/balanced rules).")]
Candidates = Annotated[int, typer.Option("--candidates", min=1, help="Candidates per iteration (k).")]

# the LLM designer
LlmModel = Annotated[str | None, typer.Option("--llm-model", help="Chat model name at the endpoint.")]
LlmBaseUrl = Annotated[str | None, typer.Option("--llm-base-url", help="OpenAI-compatible endpoint URL.")]
LlmTemperature = Annotated[float | None, typer.Option("--llm-temperature", min=0, max=2, help="Sampling temperature.")]
LlmTimeout = Annotated[
    float | None, typer.Option("--llm-timeout", min=0, help="Seconds per LLM request, in all (default 120).")
]
LlmStructured = Annotated[
    str | None,
    typer.Option(
        "--llm-structured",
        help="Structured output: auto (json_schema, stepping down to json_object and plain text when the "
        "server refuses; a resumed study starts from what worked) | json_schema | json_object | off.",
        show_default=False,
    ),
]
LlmMaxRetries = Annotated[
    int | None, typer.Option("--llm-max-retries", min=0, help="Re-asks after an invalid reply (3).")
]
PromptTemplate = Annotated[Path | None, typer.Option("--prompt-template", help="Prompt template file.")]
