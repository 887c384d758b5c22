"""A dataset described only by a card runs through summary, search, report and metrics, its groups in each.

The generated set (``flnas data synth --card``) has columns named unlike ISIC's (file, diagnosis, gender,
age_years, skin_tone, patient), a three-valued attribute that is neither sex nor age (skin_tone: light,
medium, dark), a binned attribute (age from age_years, edges 30 and 65) and an intersection (sex/skin_tone).
"""

from __future__ import annotations

import json

import optuna
import pytest

from flnas.cli.main import main
from flnas.data import write_synthetic

pytestmark = pytest.mark.slow

SKIN = ("light", "medium", "dark")
CROSS = tuple(f"{s}/{t}" for s in ("male", "female") for t in SKIN)


def run(argv: list[str], capsys) -> tuple[str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    assert info.value.code in (0, None), out.err
    return out.out, out.err


def test_card_dataset_summary_search_report_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_synthetic(tmp_path / "skin", n=200, seed=1, image_size=16, card=True)
    cache = str(tmp_path / "cache")

    out, _ = run(["data", "summary", "--data", str(data / "flnas.yaml"), "--json", "--no-progress",
                  "--image-size", "16", "--cache-dir", cache], capsys)
    summary = json.loads(out)
    assert list(summary["missing"]) == ["sex", "age", "skin_tone", "sex/skin_tone"]
    assert all(summary["group_counts"][g] > 0 for g in (*SKIN, *CROSS, "young", "middle", "old"))
    out, _ = run(["data", "summary", "--data", str(data), "--no-progress", "--image-size", "16",
                  "--cache-dir", cache], capsys)
    assert all(g in out for g in (*SKIN, *CROSS, "unknown skin_tone"))

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out, err = run(["search", "--data", str(data), "--designer", "random", "--iters", "2", "--epochs", "1",
                    "--image-size", "16", "--no-hardware", "--study", "skin", "--storage", storage,
                    "--out", str(tmp_path / "run"), "--cache-dir", cache], capsys)
    printed = " ".join((out + err).split())
    assert "Fairness Detail" in printed and all(f"{g}: (" in printed for g in (*SKIN, "female/dark"))
    study = optuna.load_study(study_name="skin", storage=storage)
    metrics = [t.user_attrs.get("metrics") or {} for t in study.trials]
    groups = next(m["val"]["groups"] for m in metrics if m.get("val", {}).get("groups"))
    assert set(groups) == {"male", "female", "young", "middle", "old", *SKIN, *CROSS}
    predictions = (tmp_path / "run" / "best" / "predictions.csv").read_text().splitlines()
    assert predictions[0].split(",")[-3:] == ["gender", "age_years", "skin_tone"]

    out, _ = run(["report", "--study", "skin", "--storage", storage, "--out", str(tmp_path / "report"),
                  "--formats", "terminal,md,html"], capsys)
    assert "skin_tone (light, medium, dark); sex/skin_tone (male/light," in " ".join(out.split())
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(g in html for g in (*SKIN, "female/dark"))

    out, _ = run(["metrics", "--predictions", str(tmp_path / "run" / "best" / "predictions.csv"),
                  "--sensitive", "gender,skin_tone", "--intersect", "gender,skin_tone", "--json"], capsys)
    audited = json.loads(out)
    text = json.dumps(audited)
    assert all(f'"{g}"' in text for g in (*SKIN, "female/dark"))


def test_python_api_takes_the_card(tmp_path):
    api = pytest.importorskip("flnas.api")
    if not hasattr(api, "search"):
        pytest.skip("the Python API has no search yet")
    data = write_synthetic(tmp_path / "skin", n=120, seed=2, image_size=16, card=True)
    storage = f"sqlite:///{tmp_path / 'api.db'}"
    api.search(data=data / "flnas.yaml", designer="random", iters=1, epochs=1, image_size=16, no_hardware=True,
               study="api", storage=storage, out=tmp_path / "run", cache_dir=tmp_path / "cache")
    trial = optuna.load_study(study_name="api", storage=storage).trials[0]
    assert {*SKIN, *CROSS} <= set(trial.user_attrs["metrics"]["val"]["groups"])
