"""`flnas space ...`: the architecture format (Template), its ranges (Choices), validation and code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flnas.cli._common import console, print_json

app = typer.Typer(
    help="The architecture format (Template), the Choices, validation and PyTorch code.", no_args_is_help=True
)

_CHOICES_HELP = "Choices file (JSON or YAML); default: the packaged default_choices.yaml."


def _schema_valid(path: Path) -> Any:
    """The spec in ``path`` checked against the Template only (not the Choices)."""
    from pydantic import ValidationError

    from flnas.errors import SpecError
    from flnas.space import ArchSpec, read_spec_file

    data = read_spec_file(path)
    try:
        return ArchSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "$"
        raise SpecError(
            f"{path}: not a valid architecture ({exc.error_count()} problem(s), first at {where}: "
            f"{first['msg']}); run `flnas space validate {path}` for all of them"
        ) from None


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of an architecture (what an LLM designer is shown)."""
    from flnas.space import ArchSpec

    print_json(ArchSpec.model_json_schema())


@app.command("example")
def example() -> None:
    """Print an example architecture (valid under the default Choices)."""
    from flnas.space import example_spec

    print_json(example_spec().model_dump(mode="json"))


@app.command("choices")
def choices(choices_path: Path | None = typer.Option(None, "--choices", help=_CHOICES_HELP)) -> None:
    """Print the effective Choices (the default or the given file, with every field filled in)."""
    from flnas.space import load_choices

    print_json(load_choices(choices_path).model_dump(mode="json"))


@app.command("validate")
def validate(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Architecture JSON file."),
    choices_path: Path | None = typer.Option(None, "--choices", help=_CHOICES_HELP),
    image_size: int = typer.Option(64, "--image-size", min=1, help="Input image size (pixels)."),
    num_classes: int = typer.Option(8, "--num-classes", min=1, help="Number of classes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check SPEC against the Template, the Choices and the input size; list every problem (exit 1)."""
    from flnas.space import load_choices, read_spec_file, validate_spec

    data = read_spec_file(spec_path)
    result = validate_spec(data, load_choices(choices_path), image_size=image_size, num_classes=num_classes)
    if as_json:
        print_json(
            {
                "valid": result.ok,
                "errors": [{"path": e.path, "message": e.message} for e in result.errors],
                "params": result.params,
                "flops": result.flops,
                "conv_layers": result.spec.conv_count() if result.spec is not None else None,
            }
        )
    elif result.ok and result.spec is not None:
        console.print(
            f"valid: {result.spec.conv_count()} conv/sepconv layers, {result.params:,} parameters, "
            f"{result.flops:,} FLOPs per {image_size}x{image_size} image",
            highlight=False,
            soft_wrap=True,
        )
    else:
        n = len(result.errors)
        console.print(f"invalid: {n} problem{'s' if n != 1 else ''}", highlight=False, soft_wrap=True)
        for issue in result.errors:
            console.print(f"  {issue}", highlight=False, markup=False, soft_wrap=True)
    if not result.ok:
        raise SystemExit(1)  # typer.Exit's code is dropped by main() in standalone_mode=False


@app.command("to-pytorch")
def to_pytorch(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Architecture JSON file."),
    num_classes: int = typer.Option(8, "--num-classes", min=1, help="Number of classes."),
    class_name: str = typer.Option("FLNASNet", "--class-name", help="Name of the generated nn.Module class."),
) -> None:
    """Print stand-alone PyTorch code (one nn.Module class) that builds exactly SPEC's network."""
    from flnas.errors import SpecError
    from flnas.space import to_pytorch_code

    if not class_name.isidentifier():
        raise SpecError(f"--class-name {class_name!r} is not a Python identifier")
    typer.echo(to_pytorch_code(_schema_valid(spec_path), num_classes, class_name=class_name), nl=False)


@app.command("params")
def params(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Architecture JSON file."),
    image_size: int = typer.Option(64, "--image-size", min=1, help="Input image size (for FLOPs)."),
    num_classes: int = typer.Option(8, "--num-classes", min=1, help="Number of classes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print SPEC's parameter count and FLOPs per image (computed from the spec, no training)."""
    from flnas.space import spec_cost

    cost = spec_cost(_schema_valid(spec_path), num_classes, image_size)
    if as_json:
        print_json({**cost, "image_size": image_size, "num_classes": num_classes})
    else:
        console.print(
            f"{cost['params']:,} parameters, {cost['flops']:,} FLOPs per {image_size}x{image_size} image",
            highlight=False,
            soft_wrap=True,
        )
