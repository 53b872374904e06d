"""scripts/run_probes.sh against a stand-in `text2token`: every probe trains once, resumes a started run, and
skips what is scored; the probe files are the reference plus one change each; the test split is scored once."""

import os
import shutil
import subprocess

import pytest

from text2token.config import CONFIG_DIR, load_config

REPO = CONFIG_DIR.parent
FAKE = (
    "#!/usr/bin/env bash\n"
    'echo "$*" >> "$CALLS"\n'
    'out=; prev=; for a in "$@"; do [ "$prev" = --output ] && out=$a; prev=$a; done\n'
    'if [ "$1" = train ]; then mkdir -p "$out/final"; : > "$out/final/text2token.json"\n'
    'elif [ "$1" = eval ]; then mkdir -p "$(dirname "$out")"; echo "{}" > "$out"; fi\n')


def sandbox(tmp_path, script: str) -> None:
    """A copy of configs/ and ``scripts/SCRIPT`` in ``tmp_path``, with the stand-in ``text2token`` on PATH."""
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / script, tmp_path / "scripts")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "text2token").write_text(FAKE)
    (tmp_path / "bin" / "text2token").chmod(0o755)


def run_script(tmp_path, script: str, *args, **env) -> list[str]:
    """Runs the sandboxed script without the lock; returns the stand-in's calls (and forgets them)."""
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HEAVY_LOCK": "none",
           "CALLS": str(tmp_path / "calls"), **env}
    subprocess.run(["bash", f"scripts/{script}", *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    calls = tmp_path / "calls"
    made = calls.read_text().splitlines() if calls.is_file() else []
    calls.unlink(missing_ok=True)
    return made


def _run(tmp_path, *names):
    return run_script(tmp_path, "run_probes.sh", *names)


def test_probes_train_once_resume_and_skip(tmp_path):
    sandbox(tmp_path, "run_probes.sh")
    started = tmp_path / "runs/probes/contrastive"
    started.mkdir(parents=True)
    (started / "config.yaml").write_text("")
    calls = _run(tmp_path)
    names = sorted(p.stem for p in (CONFIG_DIR / "probes/v2").glob("*.yaml"))
    trains = [c for c in calls if c.startswith("train")]
    assert len(trains) == len(names)
    assert [c.endswith("--resume") for c in trains] == [n == "contrastive" for n in names]
    evals = [c for c in calls if c.startswith("eval")]
    assert len(evals) == len(names) + 3 and all("--split dev" in c for c in evals)  # + mean, prompteol, default
    assert [c for c in _run(tmp_path) if not c.startswith("compare")] == [], "a second run has nothing left"


def _settings(path) -> dict:
    got = load_config(path).to_dict()
    assert got["eval"]["enabled"] is False and got["output_dir"] == f"runs/probes/{path.stem}", path
    del got["eval"]["enabled"], got["output_dir"]
    return got


def test_each_probe_is_the_reference_plus_a_change():
    """The reference is the recipe the probes began from (lr 1e-4, configs/recipe-lr-1e-4.yaml); the others each
    change something of it. lr-1e-5.yaml is the lr 1e-5 recipe the lr5-* probes change; one of them,
    lr5-two-prompts.yaml, is the current default recipe."""
    probes = CONFIG_DIR / "probes/v2"
    reference = _settings(probes / "reference.yaml")
    recipe = load_config(CONFIG_DIR / "recipe-lr-1e-4.yaml").to_dict()
    del recipe["eval"]["enabled"], recipe["output_dir"]
    assert reference == recipe and reference["train"]["lr"] == 1e-4
    for path in probes.glob("*.yaml"):
        if path.stem != "reference":
            assert _settings(path) != reference, path
    default = _settings(probes / "lr-1e-5.yaml")  # the lr5-* probes change one thing of the lr 1e-5 recipe
    adopted = _settings(probes / "lr5-two-prompts.yaml")
    current = load_config(CONFIG_DIR / "default.yaml").to_dict()
    assert {k: v for k, v in adopted.items() if k != "eval"} == {k: v for k, v in current.items()
                                                                  if k not in ("eval", "output_dir")}
    assert {k: v for k, v in default.items() if k != "targets"} == {k: v for k, v in adopted.items()
                                                                     if k != "targets"}
    lr5 = sorted(probes.glob("lr5-*.yaml"))
    assert lr5 and all(load_config(p).train.lr == 1e-5 and _settings(p) != default for p in lr5)


def test_test_split_is_scored_once(tmp_path):
    sandbox(tmp_path, "confirm_test.sh")
    calls = run_script(tmp_path, "confirm_test.sh")
    evals = [c for c in calls if c.startswith("eval")]
    assert len(evals) == 2 and all("--split test" in c for c in evals)
    assert "baseline:prompteol" in evals[0] and "runs/default/final" in evals[1]
    assert [c.split()[0] for c in run_script(tmp_path, "confirm_test.sh")] == ["compare"], "nothing left to score"


def test_lr_sweep_takes_the_probes_that_vary_only_lr_seed_and_steps(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("lr_sweep", REPO / "scripts/lr_sweep.py")
    lr_sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lr_sweep)
    for name in ("reference", "lr-1e-5", "lr-1e-5-long", "one-family", "contrastive"):
        (tmp_path / f"probe-{name}.json").write_text(json.dumps({"average": 0.5, "type_averages": {}}))
    points = lr_sweep.sweep_points(tmp_path)
    assert [(p["probe"], p["lr"], p["steps"]) for p in points] == [
        ("lr-1e-5", 1e-5, 300), ("lr-1e-5-long", 1e-5, 600), ("reference", 1e-4, 300)]


def test_probe_pairs_joins_seed_twins_and_judges_against_the_reference(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("probe_pairs", REPO / "scripts/probe_pairs.py")
    probe_pairs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe_pairs)
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, base in (("reference", "../../recipe-lr-1e-4.yaml"), ("better", "reference.yaml"),
                       ("noisy", "reference.yaml")):
        (configs / f"{name}.yaml").write_text(f"base: {base}\n")
    scores = {"prompteol": 0.50, "probe-reference": 0.50, "probe-reference-seed1": 0.51, "probe-better": 0.53,
              "probe-better-seed1": 0.52, "probe-noisy": 0.52, "probe-noisy-seed1": 0.505, "probe-fp32": 0.53,
              "probe-fp32-seed1": 0.53}
    (configs / "fp32.yaml").write_text("base: reference.yaml\n")
    for name, avg in scores.items():
        types = {t: avg for t in probe_pairs.TYPES}
        precision = "fp32" if "fp32" in name else "bf16" if "reference" in name else "auto"
        (tmp_path / f"{name}.json").write_text(json.dumps({"average": avg, "type_averages": types,
                                                           "precision": precision}))
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in
            probe_pairs.table(tmp_path, configs).splitlines() if line.startswith("| ") and "---" not in line}
    assert rows["better"][2] == "53.00 / 52.00" and rows["better"][7] == "+2.00" and rows["better"][9] == "**yes**"
    assert rows["noisy"][9] == "no", "one seed falls inside the reference's seeds"
    assert rows["reference"][6] == "—", "its base is not a probe"
    assert rows["fp32"][7] == "+2.50" and rows["fp32"][9] == "no (fp32 vs bf16)", "other numerics: no verdict"
