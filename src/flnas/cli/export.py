"""`flnas export`: write a candidate's files again (its run folder, the study, or a retrained copy)."""

from __future__ import annotations

from pathlib import Path

import typer

from flnas.cli import _options as opt
from flnas.cli._common import console, err_console


def register(app: typer.Typer) -> None:
    """Add `flnas export` to the root app."""

    @app.command("export")
    def export(
        study_name: str = typer.Option(..., "--study", help="Study name."),
        storage: opt.Storage = None,
        trial: int | None = typer.Option(None, "--trial", help="Trial number to export."),
        best: bool = typer.Option(False, "--best", help="Export the search's OptDNN (the study's selection rule)."),
        out: Path = typer.Option(..., "--out", help="Folder to write (an earlier export there is replaced)."),
        retrain: bool = typer.Option(
            False,
            "--retrain",
            help="Train the candidate again with the study's setup and seed, to rebuild model.pt, model.onnx "
            "and predictions.csv when its run folder is gone.",
        ),
    ) -> None:
        """Write a candidate's files (spec, model.py, metrics; model.pt, ONNX, predictions) again.

        They are copied from the candidate's run folder when it is complete. The study keeps every
        candidate's architecture and metrics but not its trained weights, so without the run folder
        (e.g. --out was full when the candidate was measured) only spec.json, model.py and metrics.json
        are written; --retrain trains it again with the study's setup and seed to rebuild all files.
        """
        from flnas.study.export import export_candidate, select_candidate
        from flnas.study.storage import open_study, storage_errors, storage_url

        study = open_study(study_name, storage, create=False)
        with storage_errors(storage_url(storage)):
            candidate = select_candidate(study, number=trial, best=best)
            exported = export_candidate(study, candidate, out, retrain=retrain)
        how = {"run folder": "copied from its run folder", "retrained": "retrained with the study's seed"}
        source = how.get(exported.source, "rebuilt from the study")
        console.print(
            f"trial #{candidate.number} exported to {exported.target} ({source}): {', '.join(exported.files)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if exported.missing:
            err_console.print(
                f"note: {', '.join(exported.missing)} not written -- the study keeps no trained weights and "
                "the run folder is gone; add --retrain to train it again with the study's seed",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
