import pytest

from text2token.config import CONFIG_DIR, Config, load_config, parse_overrides
from text2token.errors import Text2TokenError


def test_shipped_configs_validate():
    for name in ("default.yaml", "smoke.yaml"):
        cfg = load_config(CONFIG_DIR / name)
        assert [s.targets for s in cfg.stages] == ["data", "model"]


def test_builtin_defaults_equal_default_yaml():
    """Without the repo's configs/ (a wheel install), `text2token train` falls back to the same recipe."""
    assert Config().model_dump(exclude={"output_dir"}) == load_config(CONFIG_DIR / "default.yaml").model_dump(
        exclude={"output_dir"})


def test_overrides_apply_with_types():
    cfg = load_config(CONFIG_DIR / "smoke.yaml", ["train.lr=3e-4", "stages.1.steps=7", "model.pooling=mean",
                                                  "data.max_texts=null"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.stages[1].steps == 7
    assert cfg.model.pooling == "mean"
    assert cfg.data.max_texts is None


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key 'train.lrr'"),
    ("train.lr=fast", "train.lr"),
    ("model.pooling=max", "model.pooling"),
    ("model.prompt=no slot", "{text}"),
    ("stages.5.steps=1", "no item 5"),
    ("novalue", "key=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(Text2TokenError, match=None) as err:
        load_config(CONFIG_DIR / "smoke.yaml", [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: many\n")
    with pytest.raises(Text2TokenError, match="train.batch_size"):
        load_config(bad)
    bad.write_text("trian: {}\n")
    with pytest.raises(Text2TokenError, match="unknown key 'trian'"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(Text2TokenError, match="mapping"):
        load_config(bad)
    with pytest.raises(Text2TokenError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_duplicate_stage_names_refused():
    with pytest.raises(Exception, match="unique"):
        Config.model_validate({"stages": [{"name": "a", "targets": "data", "steps": 1},
                                          {"name": "a", "targets": "model", "steps": 1}]})


def test_parse_overrides_numbers():
    assert parse_overrides(["a=1e-4", "b=3", "c=true", "d=text"]) == [("a", 1e-4), ("b", 3), ("c", True), ("d", "text")]


# ---------------------------------------------------------------------------------------- config files, base:

REPO = CONFIG_DIR.parent
NOT_RUN_CONFIGS = ("accelerate", "architectures")  # accelerate launch settings and a model architecture
BUDGET = ["stages.0.steps=60", "stages.1.steps=60"]  # what scripts/run_comparison.sh passes (STEPS=60)
EVAL_OFF = ["eval.enabled=false"]
# the recipe as these runs ran (configs/recipe-fp32.yaml): fp32, no frozen-layer cache, the first lr (1e-4), stage-2
# targets from PromptEOL's prompt alone
FP32 = ["train.autocast=none", "train.frozen_cache=none", "train.lr=1e-4",
        'targets.model_derived.prompt=This sentence: "{text}" means in one word: "']
DEFAULT = CONFIG_DIR / "default.yaml"

# Each run of scripts/run_comparison.sh before its runs became config files: NAME -> (config, the overrides the
# script passed, in order; budget and eval.enabled=false included). The files must reproduce these runs exactly,
# or the committed results in results/offline/ would no longer describe what the configs say.
KEEP = '''[not, "no", never, nothing, none, nor, cannot, may, might, could, would, should, perhaps, seem, seems, seemed,
    seeming, very, too, less, least, more, most, much, however, although, but, well, only]'''
OLD_RUNS = {
    "text2token": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["eval.every=10", "eval.enabled=true", "eval.articles=100"]),
    "abl-data-only": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["stages.1.targets=data", "stages.1.name=data-driven-2"]),
    "abl-model-only": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["stages.0.targets=model", "stages.0.name=model-derived-1"]),
    "abl-no-filters": (DEFAULT, FP32 + BUDGET + EVAL_OFF + [
        "targets.data_driven.remove_stopwords=false", "targets.data_driven.remove_punctuation=false",
        "targets.data_driven.remove_fragments=false"]),
    "abl-mean-pooling": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["model.pooling=mean"]),
    "abl-bidirectional": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["model.attention=bidirectional"]),
    "abl-no-idf": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["targets.data_driven.idf=none"]),
    "abl-no-stopword-filter": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["targets.data_driven.remove_stopwords=false"]),
    "abl-no-fragment-filter": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["targets.data_driven.remove_fragments=false"]),
    "abl-no-punctuation-filter": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["targets.data_driven.remove_punctuation=false"]),
    "abl-bidirectional-mean": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["model.attention=bidirectional", "model.pooling=mean"]),
    "text2token-seed1": (DEFAULT, FP32 + BUDGET + EVAL_OFF + ["train.seed=1"]),
    "simcse": (CONFIG_DIR / "baselines/simcse.yaml", BUDGET + EVAL_OFF),
    "llm2vec": (CONFIG_DIR / "baselines/llm2vec.yaml", BUDGET + EVAL_OFF),
    "simcse-full": (CONFIG_DIR / "baselines/simcse.yaml", BUDGET + EVAL_OFF + ["stages.0.steps=150",
                                                                                "stages.1.steps=150"]),
    "probe-keep-stopwords": (DEFAULT, FP32 + BUDGET + EVAL_OFF + [f"targets.data_driven.keep_stopwords={KEEP}"]),
}
# ... and the same runs now: NAME -> (config file, what the script still passes)
NEW_RUNS = {
    "text2token": (CONFIG_DIR / "comparison/reference.yaml", BUDGET),
    **{f"abl-{p.stem}": (p, BUDGET + EVAL_OFF) for p in sorted((CONFIG_DIR / "ablations").glob("*.yaml"))},
    "text2token-seed1": (CONFIG_DIR / "comparison/seed1.yaml", BUDGET + EVAL_OFF),
    "simcse": (CONFIG_DIR / "baselines/simcse.yaml", BUDGET + EVAL_OFF),
    "llm2vec": (CONFIG_DIR / "baselines/llm2vec.yaml", BUDGET + EVAL_OFF),
    "simcse-full": (CONFIG_DIR / "baselines/simcse.yaml", ["stages.0.steps=150", "stages.1.steps=150"] + EVAL_OFF),
    **{f"probe-{p.stem}": (p, BUDGET + EVAL_OFF) for p in sorted((CONFIG_DIR / "probes").glob("*.yaml"))},
}


def _settings(path, overrides=()):
    d = load_config(path, list(overrides)).to_dict()
    d.pop("output_dir")  # the script passes --output
    return d


def _run_configs():
    return sorted(p for p in CONFIG_DIR.rglob("*.yaml") if p.relative_to(CONFIG_DIR).parts[0] not in NOT_RUN_CONFIGS)


def test_every_run_config_loads():
    paths = _run_configs()
    rel = {str(p.relative_to(CONFIG_DIR)) for p in paths}
    assert {"default.yaml", "smoke.yaml", "paper-7b.yaml", "baselines/simcse.yaml", "ablations/no-idf.yaml",
            "probes/keep-stopwords.yaml", "comparison/reference.yaml"} <= rel
    for p in paths:
        assert isinstance(load_config(p), Config), p


def test_every_derived_config_changes_something():
    """A file under ablations/, probes/ or comparison/ that equals default.yaml would silently re-run the reference."""
    default = _settings(DEFAULT)
    for p in _run_configs():
        if p.parent.name in ("ablations", "probes", "comparison"):
            assert _settings(p) != default, p


def test_comparison_runs_are_the_same_as_before():
    assert set(NEW_RUNS) == set(OLD_RUNS)
    for name, (path, overrides) in NEW_RUNS.items():
        old_path, old_overrides = OLD_RUNS[name]
        assert _settings(path, overrides) == _settings(old_path, old_overrides), name


def test_discovered_run_names_match_the_committed_results():
    """The script names runs after the files: abl-NAME, probe-NAME. Results under those names exist, so a rerun
    skips them; a renamed file would mean a new (recomputed) run and an orphaned result."""
    res = REPO / "results/offline"
    abl = {f"abl-{p.stem}" for p in (CONFIG_DIR / "ablations").glob("*.yaml")}
    assert abl == {p.stem for p in res.glob("abl-*.json")}
    probes = {f"probe-{p.stem}" for p in (CONFIG_DIR / "probes").glob("*.yaml")}
    assert probes == {p.stem for p in (res / "dev").glob("probe-*.json")}


def test_keep_stopwords_probe_keeps_no_as_a_word():
    kept = load_config(CONFIG_DIR / "probes/keep-stopwords.yaml").targets.data_driven.keep_stopwords
    assert "no" in kept and len(kept) == 29 and all(isinstance(w, str) for w in kept)


def test_run_comparison_script_trains_exactly_the_old_runs(tmp_path):
    """Runs scripts/run_comparison.sh against stand-ins for `text2token` and `python` that only record the
    `text2token train` calls, then checks each call resolves to the same settings as before."""
    import os
    import shutil
    import subprocess

    if not (shutil.which("bash") and shutil.which("flock")):
        pytest.skip("needs bash and flock")
    shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts/run_comparison.sh", tmp_path / "scripts")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "text2token").write_text(
        "#!/usr/bin/env bash\n"
        'out=; prev=; for a in "$@"; do [ "$prev" = --output ] && out=$a; prev=$a; done\n'
        'if [ "$1" = train ]; then mkdir -p "$out/final"; : > "$out/final/text2token.json"; '
        'printf "%s\\0" "$@" > "$out/args"\n'
        'elif [ "$1" = eval ]; then mkdir -p "$(dirname "$out")"; echo "{}" > "$out"; fi\n')
    (bin_ / "python").write_text("#!/usr/bin/env bash\ntrue\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "RUNS_DIR": "runs", "DEV_PROBES": "1",
           "HEAVY_LOCK": str(tmp_path / "lock")}
    env.pop("SKIP_FULL_SIMCSE", None)
    subprocess.run(["bash", "scripts/run_comparison.sh", "60"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    runs = {p.name.removeprefix("cmp-"): p for p in (tmp_path / "runs").iterdir()}
    assert set(runs) == set(OLD_RUNS)
    for name, run in runs.items():
        args = (run / "args").read_bytes().decode().split("\0")[:-1]
        assert args[:2] == ["train", "--config"] and args[3:5] == ["--output", f"runs/cmp-{name}"]
        old_path, old_overrides = OLD_RUNS[name]
        assert _settings(tmp_path / args[2], args[5:]) == _settings(old_path, old_overrides), name


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_nested_merge_keeps_the_rest_of_the_section(tmp_path):
    _write(tmp_path / "base.yaml", "model: {pooling: eos, max_length: 64}\ntrain: {lr: 3.0e-4, seed: 2}\n")
    child = _write(tmp_path / "child.yaml", "base: base.yaml\nmodel: {pooling: mean}\ntrain: {seed: 5}\n")
    cfg = load_config(child)
    assert (cfg.model.pooling, cfg.model.max_length) == ("mean", 64)
    assert (cfg.train.lr, cfg.train.seed) == (pytest.approx(3e-4), 5)


def test_base_dotted_keys_act_like_overrides(tmp_path):
    child = _write(tmp_path / "child.yaml", f"base: {DEFAULT}\nstages.1.targets: data\nstages.1.name: again\n"
                                            "targets.data_driven.idf: none\n")
    assert _settings(child) == _settings(DEFAULT, ["stages.1.targets=data", "stages.1.name=again",
                                                   "targets.data_driven.idf=none"])
    # a dotted stage key on a base without stages starts from the built-in two stages
    _write(tmp_path / "nostages.yaml", "train: {seed: 3}\n")
    cfg = load_config(_write(tmp_path / "c2.yaml", "base: nostages.yaml\nstages.0.steps: 7\n"))
    assert [(s.name, s.steps) for s in cfg.stages] == [("data-driven", 7), ("model-derived", 150)]
    assert cfg.train.seed == 3


def test_base_chain_paths_are_relative_to_each_file_and_overrides_come_last(tmp_path, monkeypatch):
    _write(tmp_path / "a/root.yaml", "model: {max_length: 48}\ntrain: {seed: 1}\n")
    _write(tmp_path / "b/mid.yaml", "base: ../a/root.yaml\ntrain: {seed: 2, lr: 2.0e-4}\n")
    leaf = _write(tmp_path / "c/d/leaf.yaml", "base: ../../b/mid.yaml\ntrain: {seed: 3}\n")
    monkeypatch.chdir(tmp_path / "a")  # not where the files are
    cfg = load_config(leaf, ["train.seed=4"])
    assert (cfg.model.max_length, cfg.train.lr, cfg.train.seed) == (48, pytest.approx(2e-4), 4)
    assert load_config(leaf).train.seed == 3


def test_base_lists_replace_wholesale(tmp_path):
    _write(tmp_path / "base.yaml", "targets: {data_driven: {keep_stopwords: [not, never]}}\n"
                                   "stages:\n  - {name: a, targets: data, steps: 5}\n  - {name: b, targets: model, steps: 5}\n")
    child = _write(tmp_path / "child.yaml", "base: base.yaml\ntargets: {data_driven: {keep_stopwords: [may]}}\n"
                                            "stages: [{name: only, targets: data, steps: 9}]\n")
    cfg = load_config(child)
    assert cfg.targets.data_driven.keep_stopwords == ["may"]
    assert [(s.name, s.steps) for s in cfg.stages] == [("only", 9)]


def test_base_file_missing_is_a_one_line_error(tmp_path):
    child = _write(tmp_path / "child.yaml", "base: nope/missing-base.yaml\nmodel: {pooling: mean}\n")
    with pytest.raises(Text2TokenError) as err:
        load_config(child)
    assert "missing-base.yaml" in str(err.value) and "not found" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("files", [
    {"a.yaml": "base: a.yaml\n"},
    {"a.yaml": "base: b.yaml\n", "b.yaml": "base: sub/c.yaml\n", "sub/c.yaml": "base: ../a.yaml\n"},
])
def test_base_cycle_is_refused(tmp_path, files):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(Text2TokenError) as err:
        load_config(tmp_path / "a.yaml")
    assert "base" in str(err.value) and "a.yaml" in str(err.value)
    assert "\n" not in str(err.value)


def test_base_must_be_a_path_and_unknown_keys_in_a_child_are_refused(tmp_path):
    with pytest.raises(Text2TokenError, match="base must be a config file path"):
        load_config(_write(tmp_path / "a.yaml", "base: [x.yaml]\n"))
    with pytest.raises(Text2TokenError, match="unknown key 'model.poolng'"):
        load_config(_write(tmp_path / "b.yaml", f"base: {DEFAULT}\nmodel: {{poolng: mean}}\n"))


EARLY_PROBES = {  # scripts/recipe_probe.sh before its probes were config files: smoke.yaml + these overrides
    "lr1e-4": [], "lr3e-4": ["train.lr=3e-4"], "mix0": ["targets.model_derived.mix_data=0.0"],
    "mean-noprompt": ["model.pooling=mean", "model.prompt={text}"],
}
EARLY_COMMON = ["data.max_texts=null", "eval.articles=500", "train.batch_size=16", "stages.0.steps=60",
                "stages.1.steps=60", "train.checkpoint_every=1000", "model.max_length=80", *FP32]


@pytest.mark.parametrize("name", sorted(EARLY_PROBES))
def test_early_probe_files_reproduce_the_old_override_runs(name):
    got = load_config(CONFIG_DIR / "probes" / "early" / f"{name}.yaml").to_dict()
    want = load_config(CONFIG_DIR / "smoke.yaml", EARLY_COMMON + EARLY_PROBES[name]).to_dict()
    assert got == want


@pytest.mark.parametrize("prompt", ["{text}", "Query: {text}", '{text} means in one word: "'])
def test_prompt_templates_as_overrides_stay_strings(prompt):
    assert load_config(None, [f"model.prompt={prompt}"]).model.prompt == prompt
