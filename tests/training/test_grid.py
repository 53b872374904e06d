"""The grid of issue 14 (configs/grid/, scripts/grid_configs.py, run_grid.py, grid_report.py): the files are what
the generator writes, each cell trains what it says, the methods of a setting see the same texts in the same
order for the same steps, and the driver's skip / resume / cleanup logic."""

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

from text2token.config import CONFIG_DIR, load_config, save_config
from text2token.eval.suite import SUITE_VERSION
from text2token.model.settings import DEFAULT_PROMPT, NO_PROMPT
from text2token.training.objectives import OBJECTIVES, Objective

sys.path.insert(0, str(CONFIG_DIR.parent / "scripts"))
grid_configs = importlib.import_module("grid_configs")
CELLS, Cell = grid_configs.CELLS, grid_configs.Cell
PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_committed_cell_files_are_what_the_generator_writes():
    assert grid_configs.stale_files() == []
    assert len(CELLS) == len({c.name for c in CELLS}) == 3 * 2 * 2 * 2


def test_the_time_table_sums_its_cells_and_prices_simcse_above_a_kl_method():
    rows = [line.strip("|").split(" | ") for line in grid_configs.estimates_table().splitlines()[2:]]
    table = {name.strip(): [float(v.strip().rstrip(" h")) for v in vals] for name, *vals in rows}
    for col in range(4):
        assert table["text2token"][col] < table["simcse"][col] and table["llm2vec"][col] < table["simcse"][col]
        setting = sum(table[m][col] for m in grid_configs.METHODS)
        assert table["one setting (3 methods)"][col] == pytest.approx(setting, abs=2)
        assert table["two settings (causal, bidirectional)"][col] == pytest.approx(2 * setting / 60, abs=0.1)


def test_every_cell_loads_with_its_setting_and_the_shared_budget():
    base = load_config(CONFIG_DIR / "grid/base.yaml")
    for cell in CELLS:
        cfg = load_config(cell.path)
        assert cfg.output_dir == f"runs/grid/{cell.name}"
        assert cfg.model.backbone == "smollm2-135m"
        assert (cfg.model.pooling, cfg.model.attention) == (cell.pooling, grid_configs.ATTENTIONS[cell.attention])
        assert cfg.model.prompt == (NO_PROMPT if cell.pooling == "mean" else DEFAULT_PROMPT)
        assert [s.steps for s in cfg.stages] == [s.steps for s in base.stages]
        assert (cfg.train.batch_size, cfg.train.grad_accum, cfg.train.seed) == (16, 1, 0)
        assert cfg.data == base.data and cfg.eval.enabled is False
        assert cfg.train.method == {"lora": "lora", "top8": "top_layers"}[cell.trainable]
        objectives = [s.objective for s in cfg.stages]
        assert objectives == {"text2token": ["kl", "kl"], "llm2vec": ["mntp", "simcse"],
                              "simcse": ["simcse", "simcse"]}[cell.method]
        if cell.method == "text2token":
            assert [s.targets for s in cfg.stages] == ["data", "model"]
            assert cfg.train.lr == {"eos": 1e-5, "mean": 1e-4}[cell.pooling]  # grid_configs.LEARNING_RATES
        assert cfg.train.autocast == {"lora": "none", "top8": "auto"}[cell.trainable]  # grid_configs.NUMERICS


def _setting(cell):
    return cell.pooling, cell.attention, cell.trainable


def test_the_methods_of_a_setting_share_budget_order_and_trainable_settings():
    """What decides the texts, their order and the trainable set is the same for the three methods of a setting."""
    from text2token.training.loop import stage_order

    by_setting = {}
    for cell in CELLS:
        by_setting.setdefault(_setting(cell), []).append(load_config(cell.path))
    assert len(by_setting) == 8
    for cfgs in by_setting.values():
        assert len(cfgs) == 3
        shape = {(tuple(s.steps for s in c.stages), c.train.batch_size, c.train.grad_accum, c.train.seed,
                  c.train.method, c.train.top_layers, c.train.lora_r, c.train.lora_alpha,
                  str(c.train.lora_target_modules), json.dumps(c.data.model_dump(), sort_keys=True)) for c in cfgs}
        assert len(shape) == 1
        c = cfgs[0]
        orders = {tuple(tuple(stage_order(5000, s.steps * c.train.batch_size, c.train.seed, i))
                        for i, s in enumerate(c.stages)) for c in cfgs}
        assert len(orders) == 1


def _tiny_cfg(cell, tiny_dir, corpus, **extra):
    over = {"model.backbone": str(tiny_dir), "model.max_length": 24, "data.corpus": str(corpus),
            "stages.0.steps": 3, "stages.1.steps": 3, "train.batch_size": 4, "train.checkpoint_every": 2,
            "targets.data_driven.min_df": 1, "targets.data_driven.max_df": 0.9, "targets.data_driven.top_k": 4,
            "targets.model_derived.top_k": 4, "targets.shard_size": 5, "targets.batch_size": 4, **extra}
    return load_config(cell.path, [f"{k}={v}" for k, v in over.items()])


def test_the_methods_train_on_the_same_texts_in_the_same_order(monkeypatch, tiny_dir, corpus, tmp_path):
    """The training loop, on the tiny Llama: every stage of every method of a setting visits the same corpus indices."""
    from text2token.training.loop import train

    seen = {}
    for name, obj in list(OBJECTIVES.items()):
        def step(run, micro, _obj=obj):
            seen.setdefault(run.run_dir.name, []).append(micro.indices.tolist())
            return _obj.step(run, micro)
        monkeypatch.setitem(OBJECTIVES, name, Objective(name, step, obj.needs_targets, obj.dropout))
    cells = [c for c in CELLS if _setting(c) == ("eos", "bidir", "lora")]
    for cell in cells:
        train(_tiny_cfg(cell, tiny_dir, corpus), tmp_path / cell.method, show_progress=False)
    assert set(seen) == {"text2token", "llm2vec", "simcse"}
    assert len(seen["text2token"]) == 6 and seen["text2token"] == seen["llm2vec"] == seen["simcse"]
    assert seen["text2token"][:3] != seen["text2token"][3:]  # stage 2 draws its own order


@pytest.mark.parametrize("cell_name", ["llm2vec-mean-bidir-lora", "text2token-eos-causal-lora"])
def test_an_interrupted_lora_cell_resumes_to_the_same_weights(tiny_dir, corpus, tmp_path, cell_name):
    """The driver resumes interrupted cells: with LoRA (and LoRA + attention dropout) the resumed run ends with
    the uninterrupted run's weights."""
    from safetensors.torch import load_file
    from text2token.training.loop import train

    cfg = _tiny_cfg(next(c for c in CELLS if c.name == cell_name), tiny_dir, corpus)
    full = train(cfg, tmp_path / "full", show_progress=False)
    train(cfg, tmp_path / "cut", stop_after_steps=4, show_progress=False)  # inside stage 2
    cut = train(cfg, tmp_path / "cut", resume=True, show_progress=False)
    a, b = load_file(str(full / "final/model.safetensors")), load_file(str(cut / "final/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _trainable_names(tiny_dir, train_cfg, layers):
    from text2token.training.trainable import mark_trainable
    from helpers import make_model

    model = make_model(400, layers=layers)
    mark_trainable(model, train_cfg)
    return model, {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("trainable", ["lora", "top8"])
def test_each_cell_trains_the_intended_parameters(tiny_dir, trainable):
    """LoRA: A and B of all seven linear projections of every layer, nothing else; top8: layers 2-9 of 10 + norm."""
    layers = 10
    names_per_method = set()
    for cell in (c for c in CELLS if c.trainable == trainable):
        _, names = _trainable_names(tiny_dir, load_config(cell.path).train, layers)
        names_per_method.add(frozenset(names))
    assert len(names_per_method) == 1  # the same set for every method and setting of the row
    names = next(iter(names_per_method))
    if trainable == "lora":
        want = {f"model.layers.{i}.{'self_attn' if p[0] in 'qkvo' else 'mlp'}.{p}.lora_{ab}.default"
                f".weight" for i in range(layers) for p in PROJECTIONS for ab in "AB"}
        assert names == want
    else:
        layer_of = {int(n.split(".")[2]) for n in names if n.startswith("model.layers.")}
        assert layer_of == set(range(2, 10)) and "model.norm.weight" in names
        assert all(n.startswith(("model.layers.", "model.norm")) for n in names)


def test_bidirectional_attention_is_learnable_in_every_layer_with_lora(tiny_dir):
    """With LoRA on every layer, a loss on the first token's state reaches the bottom layer's adapters through a
    later token (bidirectional attention): every layer the switch changes can adapt to it."""
    from text2token.model.encoder import Encoder
    from text2token.model.settings import EncoderSettings
    from text2token.training.trainable import mark_trainable

    cell = next(c for c in CELLS if _setting(c) == ("mean", "bidir", "lora"))
    from text2token.model.backbone import load_backbone

    model, tok = load_backbone(str(tiny_dir))
    enc = Encoder(model, tok, EncoderSettings(pooling="mean", attention="bidirectional", prompt="{text}",
                                              max_length=24), device="cpu")
    mark_trainable(enc.model, load_config(cell.path).train)
    for n, p in enc.model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)  # B starts at 0: make the adapters act
    batch, _ = enc.tokenize(["the cat sat on the mat"])
    ids = batch["input_ids"].clone()
    embeds = enc.model.get_input_embeddings()(ids).detach().requires_grad_(True)
    states = enc.base(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
    states[0, 0].sum().backward()
    assert embeds.grad[0, -1].abs().sum() > 0  # the first token's state depends on the last token
    lora0 = [p.grad for n, p in enc.model.named_parameters() if "layers.0." in n and "lora_A" in n]
    assert lora0 and all(g is not None and g.abs().sum() > 0 for g in lora0)


def test_late_drop_tells_a_flat_curve_from_a_falling_one():
    report = importlib.import_module("grid_report")
    flat = [(i, 10.0 if i == 0 else 2.0 + 0.05 * (i % 2)) for i in range(40)]
    falling = [(i, 10.0 - 0.2 * i) for i in range(40)]
    assert report.late_drop(flat) < report.FLAT < report.late_drop(falling)
    assert report.late_drop(flat[:5]) is None
    spiky = [(i, 0.03 if i < 5 else 1.2 if i == 25 else 0.02) for i in range(40)]  # near 0, one bad batch late
    assert report.late_drop(spiky) < report.FLAT
    near_floor = [0.029, 0.011, 0.143, 0.426, 0.03, 0.011, 0.035, 0.02, 0.011, 0.031, 0.005, 0.011, 0.237, 0.104,
                  0.012, 0.119, 0.03, 0.161, 0.271, 0.012, 0.078, 0.005, 0.139, 0.015, 0.005, 0.276, 0.024, 0.009,
                  0.012, 0.012, 0.006]  # simcse-mean-bidir-top8's stage 2: starts near 0, noise only (was 387%)
    assert report.late_drop(list(enumerate(near_floor))) == 0.0


def test_step_seconds_skip_a_resumed_runs_clock_restart(tmp_path):
    report = importlib.import_module("grid_report")
    rows = [("a", 1, 2.0), ("a", 5, 10.0), ("a", 10, 20.0),  # 2 s a step
            ("a", 15, 5.0), ("a", 20, 15.0),  # resumed at step 10: the clock restarts, still 2 s a step
            ("b", 5, 30.0), ("b", 10, 60.0)]  # 6 s a step
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"event": "train", "stage": st, "step": n, "global_step": n, "loss": 1.0,
                                           "seconds": sec}) + "\n" for st, n, sec in rows))
    assert report.step_seconds(report.train_events(metrics)) == pytest.approx({"a": 2.0, "b": 6.0})
    assert report.train_events(tmp_path / "missing.jsonl") == []

# ------------------------------------------------------------------------------------------- the driver
STUB = '''
import json, sys
VERSION = %d
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--output") + 1])
if args[0] == "train":
    out.mkdir(parents=True, exist_ok=True)
    from text2token.config import load_config, save_config
    save_config(load_config(args[args.index("--config") + 1]), out / "config.yaml")
    log = Path(out.parent / "calls.log")
    log.write_text((log.read_text() if log.exists() else "") + " ".join(args) + "\\n")
    if (out.parent / "fail-once").exists() and "--resume" not in args:
        sys.exit(1)
    (out / "metrics.jsonl").write_text("".join(json.dumps({"event": "train", "stage": s, "global_step": g,
        "loss": 3.0 - g / 20}) + "\\n" for s, g in [("a", 1), ("a", 2), ("b", 3)]))
    (out / "final").mkdir()
    (out / "final" / "text2token.json").write_text("{}")
else:
    split = args[args.index("--split") + 1]
    tasks = {"t1": {"type": "retrieval", "main_metric": "ndcg", "main_score": 0.5}}
    out.write_text(json.dumps({"model": args[args.index("--name") + 1], "suite": "offline", "suite_version": VERSION,
        "split": split, "tasks": tasks, "average": 0.5, "average_by_type": 0.5, "type_averages": {"retrieval": 0.5}}))
''' % SUITE_VERSION


@pytest.fixture()
def driver(tmp_path, monkeypatch):
    """scripts/run_grid.py with a stand-in `text2token` and every folder under tmp_path; returns (main, dirs)."""
    stub = tmp_path / "stub.py"
    stub.write_text(STUB)
    dirs = {k: tmp_path / k for k in ("runs", "results", "records")}
    monkeypatch.setenv("TEXT2TOKEN_CMD", f"{sys.executable} {stub}")
    monkeypatch.setenv("HEAVY_LOCK", str(tmp_path / "lock"))
    monkeypatch.setenv("GRID_TRAIN_RECORDS", str(dirs["records"]))
    for var in ("KEEP_MODELS", "GRID_SPLIT", "GRID_SUITE", "GRID_SUITE_VERSION", "GRID_EVAL_ARGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # main() changes to the repo root; this puts the test's cwd back afterwards
    run_grid = importlib.import_module("run_grid")

    def main(*args):
        return run_grid.main([*args, "--runs", str(dirs["runs"]), "--results", str(dirs["results"])])
    return main, dirs


def _result(dirs, name, split="dev", version=SUITE_VERSION):
    dirs["results"].mkdir(exist_ok=True)
    (dirs["results"] / f"{name}.json").write_text(json.dumps(
        {"model": name, "suite": "offline", "suite_version": version, "split": split, "tasks": {}}))


def _saved_config(dirs, name, *overrides):
    """What `text2token train` saves in the run dir: the cell's resolved config (with ``overrides``)."""
    (dirs["runs"] / name).mkdir(parents=True, exist_ok=True)
    save_config(load_config(CONFIG_DIR / "grid" / f"{name}.yaml", list(overrides)), dirs["runs"] / name / "config.yaml")


def _final(dirs, name):
    (dirs["runs"] / name / "final").mkdir(parents=True)
    (dirs["runs"] / name / "final" / "text2token.json").write_text("{}")
    _saved_config(dirs, name)


def test_dry_run_plans_skip_resume_eval_cleanup_and_blocks(driver, capsys):
    main, dirs = driver
    c = [cell.name for cell in CELLS]
    _result(dirs, c[0])                                       # done: nothing to do
    _result(dirs, c[1]); _final(dirs, c[1])                   # done, model still there: cleanup
    _saved_config(dirs, c[2])                                 # interrupted: resume
    _saved_config(dirs, c[7], "train.lr=0.5")                 # interrupted, then its config changed: blocked
    _final(dirs, c[3])                                        # trained, not scored: eval
    _final(dirs, c[4]); _result(dirs, c[4], split="test")     # a result of another split: eval again
    _result(dirs, c[5], version=0)                            # another suite version, model deleted: blocked
    dirs["records"].mkdir()
    (dirs["records"] / f"{c[5]}.json").write_text(json.dumps({"trained": True, "config_sha": "x", "segments": []}))
    assert main("--dry-run") == 1  # blocked cells make the exit status 1
    lines = capsys.readouterr().out.splitlines()
    plans = {line.split(": ", 1)[0].split("] ")[1]: line.split(": ", 1)[1] for line in lines if line.startswith("[")}
    assert plans[c[0]].startswith("nothing to do (result done)")
    assert plans[c[1]].startswith("cleanup (result done)")
    assert plans[c[2]].startswith("resume -> eval -> cleanup")
    assert plans[c[3]].startswith("eval -> cleanup (result missing; ~4 min)")  # LoRA, mean pooling: fp32 eval
    assert plans[c[4]].startswith("eval -> cleanup (result stale")
    assert "BLOCKED" in plans[c[5]] and "changed since it trained" in plans[c[5]]
    assert plans[c[6]].startswith("train -> eval -> cleanup")
    assert "BLOCKED" in plans[c[7]] and "holds a run of another config" in plans[c[7]]
    assert (dirs["runs"] / c[1] / "final").is_dir()  # a dry run touches nothing
    refs = [line for line in lines if line.startswith("reference ")]  # every setting's untrained backbone first
    assert refs == [f"reference untrained-{p}-{a} (baseline:{b}): eval (result missing)" for p, a, b in
                    [("eos", "causal", "prompteol"), ("mean", "causal", "mean"), ("mean", "bidir", "mean-bidir"),
                     ("eos", "bidir", "prompteol-bidir")]]
    assert lines.index(refs[-1]) < min(i for i, line in enumerate(lines) if line.startswith("["))
    run_grid = importlib.import_module("run_grid")
    opt = run_grid.parse_options(["--results", str(dirs["results"])])
    for cell, precision in [(CELLS[0], "fp32"), (CELLS[-1], "bf16"), (run_grid.REFERENCES[0], "fp32")]:
        cmd = run_grid.eval_command(opt, cell, "MODEL")  # each row's pinned numerics, whatever the machine
        assert cmd[cmd.index("--precision") + 1] == precision and cmd[cmd.index("--model") + 1] == "MODEL"
    assert main("--dry-run", "--keep-models", "--only", c[1], "--only", c[3]) == 0
    out = capsys.readouterr().out
    assert "nothing to do (result done)" in out and "eval (result missing" in out and "cleanup" not in out


def test_driver_trains_resumes_scores_records_and_cleans_up(driver, capsys):
    main, dirs = driver
    names = [c.name for c in CELLS[:2]]
    dirs["runs"].mkdir()
    (dirs["runs"] / "fail-once").write_text("")
    assert main("--only", names[0], "--only", names[1]) == 1  # both trainings fail once
    assert not (dirs["results"] / f"{names[0]}.json").exists()
    (dirs["runs"] / "fail-once").unlink()
    assert main("--only", names[0], "--only", names[1]) == 0
    calls = (dirs["runs"] / "calls.log").read_text().splitlines()
    ref = json.loads((dirs["results"] / "untrained-eos-causal.json").read_text())  # the two cells' setting only
    assert ref["model"] == "untrained-eos-causal" and not (dirs["results"] / "untrained-mean-causal.json").exists()
    assert [s["kind"] for s in json.loads((dirs["records"] / "untrained-eos-causal.json").read_text())["segments"]] \
        == ["eval"]  # scored once: the second run finds it done
    assert [("--resume" in call) for call in calls] == [False, False, True, True]
    assert all(call.startswith(f"train --config configs/grid/") for call in calls)
    for name in names:
        result = json.loads((dirs["results"] / f"{name}.json").read_text())
        assert result["split"] == "dev" and result["model"] == name
        assert not (dirs["runs"] / name / "final").exists()  # deleted after the eval
        record = json.loads((dirs["records"] / f"{name}.json").read_text())
        assert record["trained"] and [s["kind"] for s in record["segments"]] == ["train", "train", "eval"]
        assert [s["rc"] for s in record["segments"]] == [1, 0, 0] and record["segments"][1]["resumed"]
        assert all(s["wall_s"] >= 0 and s["threads"] >= 1 for s in record["segments"])
        assert (dirs["records"] / f"{name}.metrics.jsonl").is_file()
    for f in ("grid.md", "grid.png", "loss.png", "tasks.md", "tasks.png"):
        assert (dirs["results"] / f).is_file(), f
    table = (dirs["results"] / "grid.md").read_text()
    assert f"| {names[0]} | text2token |" in table and "50.0" in table
    assert "| untrained-eos-causal | untrained | eos | causal | none | 50.0 | — |" in table
    assert f"| {names[0]} | text2token | eos | causal | lora | 50.0 | +0.0 |" in table
    capsys.readouterr()
    assert main("--only", names[0], "--only", names[1], "--dry-run") == 0  # finished: nothing left
    assert capsys.readouterr().out.count("nothing to do (result done)") == 3  # the reference too
