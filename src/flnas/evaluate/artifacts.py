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
) -> dict[str, str]:
    """Write the files listed in the module docstring; return {file name: path} of what was written.

    ``onnx_path``: an ONNX file already exported (by the hardware measurement) to copy instead of exporting
    again. A failed ONNX export is recorded in metrics.json (``artifacts.errors``) rather than raised; a
    directory that cannot be written is a user error (FlnasError).
    """
    import torch

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlnasError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from exc
    written: dict[str, str] = {}
    errors: dict[str, str] = {}
    cpu_model = copy.deepcopy(model).cpu().eval()

    try:
        if spec is not None:
            data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
            write_json(out / "spec.json", data)
            written["spec.json"] = str(out / "spec.json")
        torch.save(cpu_model.state_dict(), out / "model.pt")
        written["model.pt"] = str(out / "model.pt")
        if spec is not None:
            try:
                from flnas.space import to_pytorch_code

                (out / "model.py").write_text(to_pytorch_code(spec, num_classes), encoding="utf-8")
                written["model.py"] = str(out / "model.py")
            except Exception as exc:  # the code generator is another module; record, keep going
                errors["model.py"] = f"{type(exc).__name__}: {exc}"
        target = out / "model.onnx"
        try:
            if onnx_path is not None and Path(onnx_path).exists():
                if Path(onnx_path).resolve() != target.resolve():
                    shutil.copyfile(onnx_path, target)
            else:
                from flnas.evaluate.hardware import export_onnx

                export_onnx(cpu_model, target, image_size)
            written["model.onnx"] = str(target)
        except Exception as exc:
            logger.warning("ONNX export failed: %s", exc)
            errors["model.onnx"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if predictions is not None:
            predictions.to_csv(out / "predictions.csv", index=False)
            written["predictions.csv"] = str(out / "predictions.csv")
        written["metrics.json"] = str(out / "metrics.json")
        record = dict(metrics)
        record["artifacts"] = {"dir": str(out), "files": sorted(written), "errors": errors}
        write_json(out / "metrics.json", record)
    except OSError as exc:
        raise FlnasError(f"{out}: cannot write the evaluation artifacts ({exc.strerror or exc})") from exc
    return written
