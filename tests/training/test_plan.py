"""The dry run: configs/paper-7b.yaml on the meta device (no weights), parameter counts, memory estimate."""

import pytest

from text2token.config import CONFIG_DIR, load_config
from text2token.errors import Text2TokenError
from text2token.training.plan import dry_run, make_plan

from helpers import assert_one_line_error, run_cli
from text2token.model.backbone import load_backbone

MISTRAL = CONFIG_DIR / "architectures" / "mistral-7b.json"


def test_paper_config_dry_run_counts_mistral_7b(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "train", "--config", CONFIG_DIR / "paper-7b.yaml", "--dry-run",
                             "--architecture", MISTRAL, "--num-gpus", "8", "--gpu-memory", "80")
    assert code == 0, err
    assert "7,241,732,096 (7.24B)" in out and "trainable: 41,943,040" in out  # LoRA r=16 on every linear layer
    assert "global 128 texts per step = 8 GPU(s) x micro-batch 16" in out and "dry run: config ok" in out


def test_estimate_parts():
    cfg = load_config(CONFIG_DIR / "paper-7b.yaml")
    plan = make_plan(cfg, MISTRAL, num_gpus=8)
    assert 13.0 < plan.weights_gib < 14.0                         # 7.24B bf16 + fp32 adapters
    assert plan.optimizer_gib == pytest.approx(2 * plan.gradients_gib)
    assert plan.gradient_checkpointing and plan.activations_gib < plan.activations_other_gib / 5
    fsdp = make_plan(cfg, MISTRAL, num_gpus=8, sharding="fsdp")
    assert fsdp.weights_gib == pytest.approx(plan.weights_gib / 8)
    more = make_plan(load_config(CONFIG_DIR / "paper-7b.yaml", ["train.batch_size=256"]), MISTRAL, num_gpus=8)
    assert more.activations_gib == pytest.approx(2 * plan.activations_gib, rel=0.05)


def test_over_budget_is_one_line(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "plan", "--config", CONFIG_DIR / "paper-7b.yaml",
                             "--architecture", MISTRAL, "--num-gpus", "1", "--gpu-memory", "40",
                             "train.gradient_checkpointing=false")
    assert_one_line_error(code, err, "exceeds --gpu-memory 40 GiB")


def test_missing_backbone_without_architecture():
    with pytest.raises(Text2TokenError, match="--architecture"):
        dry_run(load_config(CONFIG_DIR / "paper-7b.yaml"))


def test_dry_run_of_a_local_backbone(tiny_dir):
    cfg = load_config(None, [f"model.backbone={tiny_dir}", "train.top_layers=2"])
    plan = make_plan(cfg)
    model, _ = load_backbone(str(tiny_dir))
    top = sum(p.numel() for layer in model.model.layers[-2:] for p in layer.parameters())
    assert plan.layers == 3 and plan.parameters == sum(p.numel() for p in model.parameters())
    assert plan.trainable == top + model.model.norm.weight.numel(), "the top 2 layers and the final norm"
