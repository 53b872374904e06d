"""scripts/run_backbones.sh against a stand-in `text2token`: each backbone's raw PromptEOL and trained model are
scored once on dev, an uninterrupted training is timed, a started run resumes untimed; the configs are the
default recipe on another backbone."""

import json
import os
import shutil
import subprocess

import pytest

from text2token.config import CONFIG_DIR, load_config
from test_probes_script import FAKE

NAMES = sorted(p.stem for p in (CONFIG_DIR / "backbones").glob("*.yaml"))


def _run(tmp_path):
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HEAVY_LOCK": "none",
           "CALLS": str(tmp_path / "calls"), "PYTHON": "true"}
    subprocess.run(["bash", "scripts/run_backbones.sh"], cwd=tmp_path, env=env, check=True, capture_output=True)
    calls = tmp_path / "calls"
    made = calls.read_text().splitlines() if calls.is_file() else []
    calls.unlink(missing_ok=True)
    return made


def test_backbones_score_raw_and_trained_once_and_time_the_training(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "scripts").mkdir()
    shutil.copy(CONFIG_DIR.parent / "scripts/run_backbones.sh", tmp_path / "scripts")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "text2token").write_text(FAKE)
    (tmp_path / "bin" / "text2token").chmod(0o755)
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


def test_each_backbone_config_is_the_default_recipe_on_its_alias():
    from text2token.model.backbone import ALIASES

    default = load_config(CONFIG_DIR / "default.yaml").to_dict()
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
