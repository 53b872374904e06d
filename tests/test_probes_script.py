"""scripts/run_probes.sh against a stand-in `text2token`: every probe trains once, resumes a started run, and
skips what is scored; the probe files are the default plus one change each."""

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


def _run(tmp_path, *names):
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HEAVY_LOCK": "none",
           "CALLS": str(tmp_path / "calls")}
    subprocess.run(["bash", "scripts/run_probes.sh", *names], cwd=tmp_path, env=env, check=True, capture_output=True)
    calls = (tmp_path / "calls").read_text().splitlines()
    (tmp_path / "calls").unlink()
    return calls


def test_probes_train_once_resume_and_skip(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts/run_probes.sh", tmp_path / "scripts")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "text2token").write_text(FAKE)
    (tmp_path / "bin" / "text2token").chmod(0o755)
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


def test_each_probe_is_the_default_plus_a_change():
    default = load_config(CONFIG_DIR / "default.yaml").to_dict()
    for path in (CONFIG_DIR / "probes/v2").glob("*.yaml"):
        got = load_config(path).to_dict()
        assert got["eval"]["enabled"] is False and got["output_dir"] == f"runs/probes/{path.stem}"
        got["eval"]["enabled"], got["output_dir"] = default["eval"]["enabled"], default["output_dir"]
        assert got != default, path
