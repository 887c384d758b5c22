"""What an evaluation leaves on disk, so anyone can reuse the model or recompute its metrics.

``out_dir`` gets:

- ``spec.json``: the architecture (only when evaluated from a spec);
- ``model.pt``: the trained weights (a CPU ``state_dict``, best validation loss);
- ``model.onnx``: the same network exported for ONNX Runtime (input ``(batch, 3, S, S)`` float32,
  normalised as ``metrics.json`` -> ``normalization`` says);
- ``model.py``: stand-alone PyTorch code of the architecture (only from a spec);
- ``metrics.json``: the ``flnas evaluate --json`` object;
- ``predictions.csv``: the test split (image, y_true, y_pred as class names, sex, age_approx), which
  ``flnas metrics --predictions predictions.csv`` turns back into the test metrics.

``metrics.json`` is written last, so a folder that has it is complete.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from flnas.errors import FlnasError
from flnas.jsonsafe import json_safe

logger = logging.getLogger(__name__)


class ArtifactsError(FlnasError):
    """A folder that cannot take the artifacts (full disk, read-only, a file in the way).

    ``errno`` is the operating system's error number, so a caller can tell a full disk from the rest.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(json_safe(obj), indent=2) + "\n", encoding="utf-8")


def save_artifacts(
    out_dir: str | Path,
    *,
    spec: Any,
    model: Any,
    metrics: dict[str, Any],
    predictions: Any,
    num_classes: int,
    image_size: int,
    onnx_path: Path | None = None,
    final_dir: str | Path | None = None,
) -> dict[str, str]:
    """Write the files listed in the module docstring; return {file name: path} of what was written.

    ``onnx_path``: an ONNX file already exported (by the hardware measurement) to copy instead of exporting
    again. ``model`` None (no trained network) writes only spec.json, model.py and metrics.json.
    ``final_dir``: where the folder will live once complete, when it is written into a temporary folder
    first (recorded in metrics.json and named in errors). A failed ONNX export is recorded in metrics.json
    (``artifacts.errors``) rather than raised; a folder that cannot be written raises ArtifactsError.
    """
    out = Path(out_dir)
    shown = Path(final_dir) if final_dir is not None else out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactsError(f"{shown}: cannot create the folder ({exc.strerror or exc})", errno=exc.errno) from exc
    written: dict[str, str] = {}
    errors: dict[str, str] = {}
    current = "the files"
    try:
        if spec is not None:
            current = "spec.json"
            data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
            write_json(out / "spec.json", data)
            written["spec.json"] = str(shown / "spec.json")
        if model is not None:
            import torch

            current = "model.pt"
            cpu_model = copy.deepcopy(model).cpu().eval()
            with open(out / "model.pt", "wb") as fh:  # a Python file: a full disk is an OSError, not torch's
                torch.save(cpu_model.state_dict(), fh)
            written["model.pt"] = str(shown / "model.pt")
            current = "model.onnx"
            _write_onnx(out / "model.onnx", cpu_model, image_size, onnx_path, written, errors, shown)
        if spec is not None:
            try:
                from flnas.space import to_pytorch_code

                current = "model.py"
                (out / "model.py").write_text(to_pytorch_code(spec, num_classes), encoding="utf-8")
                written["model.py"] = str(shown / "model.py")
            except OSError:
                raise
            except Exception as exc:  # the code generator is another module; record, keep going
                errors["model.py"] = f"{type(exc).__name__}: {exc}"
        if predictions is not None:
            current = "predictions.csv"
            predictions.to_csv(out / "predictions.csv", index=False)
            written["predictions.csv"] = str(shown / "predictions.csv")
        current = "metrics.json"
        written["metrics.json"] = str(shown / "metrics.json")
        record = dict(metrics)
        record["artifacts"] = {"dir": str(shown), "files": sorted(written), "errors": errors}
        write_json(out / "metrics.json", record)
    except OSError as exc:
        raise ArtifactsError(f"{shown}: cannot write {current} ({exc.strerror or exc})", errno=exc.errno) from exc
    return written


def _write_onnx(
    target: Path,
    cpu_model: Any,
    image_size: int,
    onnx_path: Path | None,
    written: dict[str, str],
    errors: dict[str, str],
    shown: Path,
) -> None:
    """model.onnx: copied from the hardware measurement's export, else exported; an exporter failure is
    recorded in ``errors``, a failure to write the file raises (the folder cannot take the artifacts)."""
    try:
        if onnx_path is not None and Path(onnx_path).exists():
            if Path(onnx_path).resolve() != target.resolve():
                shutil.copyfile(onnx_path, target)
        else:
            from flnas.evaluate.hardware import export_onnx

            export_onnx(cpu_model, target, image_size)
        written["model.onnx"] = str(shown / "model.onnx")
    except OSError as exc:
        if exc.errno is not None:
            raise
        errors["model.onnx"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        logger.warning("ONNX export failed: %s", exc)
        errors["model.onnx"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
