"""scripts/run_backbones.sh against a stand-in `text2token`: each backbone's raw PromptEOL and trained model are
scored once on dev, an uninterrupted training is timed, a started run resumes untimed; the configs are the
table's recipe on another backbone."""

import json

import pytest
from test_probes_script import run_script, sandbox

from text2token.config import CONFIG_DIR, load_config

NAMES = sorted(p.stem for p in (CONFIG_DIR / "backbones").glob("*.yaml"))


def _run(tmp_path):
    return run_script(tmp_path, "run_backbones.sh", PYTHON="true")  # the report needs real results


def test_backbones_score_raw_and_trained_once_and_time_the_training(tmp_path):
    sandbox(tmp_path, "run_backbones.sh")
    started = tmp_path / "runs/backbones" / NAMES[0]
    started.mkdir(parents=True)
    (started / "config.yaml").write_text("")
    calls = _run(tmp_path)
    raw = [c for c in calls if c.startswith("eval --model baseline:prompteol")]
    assert [c.split("--backbone ")[1].split()[0] for c in raw] == NAMES
    trains = [c for c in calls if c.startswith("train")]
    assert [c.endswith("--resume") for c in trains] == [n == NAMES[0] for n in NAMES]
    assert all("--split dev" in c for c in calls if c.startswith("eval")) and len(calls) == 3 * len(NAMES)
    out = tmp_path / "results/offline/backbones"
    assert not (out / f"{NAMES[0]}-train.json").exists()  # a resumed run's wall time would mislead
    for name in NAMES[1:]:
        assert json.loads((out / f"{name}-train.json").read_text())["train_seconds"] >= 0
    assert not list(out.glob("*.tmp")) and _run(tmp_path) == [], "a second run has nothing left"


def test_each_backbone_config_is_the_table_recipe_on_its_alias():
    """The committed table ran at lr 1e-4 (recipe-lr-1e-4.yaml, the default before issue 14's lr sweep)."""
    from text2token.model.backbone import ALIASES

    default = load_config(CONFIG_DIR / "recipe-lr-1e-4.yaml").to_dict()
    assert set(NAMES) == set(ALIASES)
    for name in NAMES:
        got = load_config(CONFIG_DIR / "backbones" / f"{name}.yaml").to_dict()
        assert got["model"].pop("backbone") == name and got["output_dir"] == f"runs/backbones/{name}"
        assert got["eval"]["enabled"] is False
        for key in ("output_dir", "eval"):
            got[key] = default[key]
        got["model"]["backbone"] = default["model"]["backbone"]
        got["train"]["frozen_cache"] = default["train"]["frozen_cache"]  # a speed setting: Gemma needs bfloat16
        for stage in got["stages"]:
            stage["steps"] = 150  # the 0.5B model runs a shorter budget (named in its file)
        assert got == default, name


def test_report_table_from_results(tmp_path, monkeypatch):
    """backbone_report.py turns the two results and the timing into one row: lift, per-type lift, throughput."""
    import importlib
    import sys

    sys.path.insert(0, str(CONFIG_DIR.parent / "scripts"))
    report = importlib.import_module("backbone_report")
    types = dict.fromkeys(report.TYPES, 0.5)
    raw = {"average": 0.5, "type_averages": types, "n_distinct_texts": 100, "encode_seconds": 10.0}
    trained = {**raw, "average": 0.55, "type_averages": {**types, "retrieval": 0.6}, "encode_seconds": 4.0}
    (tmp_path / "smollm2-135m-prompteol.json").write_text(json.dumps(raw))
    (tmp_path / "smollm2-135m-text2token.json").write_text(json.dumps(trained))
    (tmp_path / "smollm2-135m-train.json").write_text(json.dumps({"train_seconds": 600}))
    row = report.backbone_row("smollm2-135m", tmp_path)
    assert row["layers"] == 30 and row["steps"] == 300 and row["encode_texts_per_s"] == 25.0
    assert row["type_lift"]["retrieval"] == pytest.approx(0.1) and row["type_lift"]["clustering"] == 0
    line = report.markdown([row]).splitlines()[2]
    assert "| 10.0 (10.0) | 25 | 50.00 | 55.00 | +5.00 | +10.0 |" in line, line
    assert report.backbone_row("gemma3-270m", tmp_path) is None  # no results yet
