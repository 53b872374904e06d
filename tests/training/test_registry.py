"""The objective registry: one place names the objectives, and the config and the loop read it."""

import pytest
import torch

from text2token.config import StageConfig, load_config
from text2token.errors import Text2TokenError
from text2token.training import objectives
from text2token.training.loop import train
from text2token.training.objectives import OBJECTIVES, Objective


def test_the_objectives_and_what_they_need():
    assert {n: (o.needs_targets, o.dropout) for n, o in OBJECTIVES.items()} == {
        "kl": (True, False), "kl_contrastive": (True, False), "kl_simcse": (True, True), "simcse": (False, True),
        "mntp": (False, False)}


def test_unknown_objective_is_a_one_line_error_naming_the_choices():
    with pytest.raises(Text2TokenError) as err:
        load_config(None, ["stages.0.objective=triplet"])
    assert "unknown objective 'triplet' (choose from kl, kl_contrastive, kl_simcse, simcse, mntp)" in str(err.value)
    assert "\n" not in str(err.value)


def test_targets_follow_the_registry():
    with pytest.raises(ValueError, match="needs targets"):
        StageConfig(name="s", objective="kl", steps=1)
    with pytest.raises(ValueError, match="takes no targets"):
        StageConfig(name="s", objective="simcse", targets="data", steps=1)


def test_a_new_objective_is_one_function(monkeypatch, tiny_dir, corpus, tmp_path):
    """Registering a step function is all a new objective needs: the config accepts it, the loop runs it."""
    seen = []

    def norm_step(run, micro):
        seen.append(len(micro.indices))
        pooled = run.forward(lambda: run.encoder.forward(**micro.local))
        return (pooled.norm(dim=-1) - 1.0).pow(2).mean()

    monkeypatch.setitem(OBJECTIVES, "unit-norm", Objective("unit-norm", norm_step, False, False))
    from helpers import tiny_train_config

    cfg = tiny_train_config(tiny_dir, corpus)
    cfg.stages = [StageConfig(name="norm", objective="unit-norm", steps=3)]
    run = train(cfg, tmp_path / "run", show_progress=False)
    assert seen == [4, 4, 4] and (run / "final" / "text2token.json").is_file()


def test_mntp_masks_deterministically_per_seed(tiny_encoder):
    batch, _ = tiny_encoder.tokenize(["the cat sat on the mat", "Paris is the capital of France"])
    a = objectives.mask_tokens(batch, tiny_encoder.tokenizer, 0.3, torch.Generator().manual_seed(5))
    b = objectives.mask_tokens(batch, tiny_encoder.tokenizer, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].any(1).all() and not a[1][:, 0].any(), "at least one masked per row, never the first token"
