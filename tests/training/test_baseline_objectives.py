"""The baseline objectives that share the training loop: unsupervised SimCSE and LLM2Vec's MNTP."""

import pytest
import torch
from safetensors.torch import load_file

from text2token.config import Config, StageConfig
from text2token.training.objectives import mntp_loss, simcse_loss
from text2token.training.loop import train
from text2token.training.objectives import mask_tokens
from text2token.training.trainable import set_attention_dropout

from helpers import TINY_CORPUS
from helpers import tiny_train_config as _cfg


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TINY_CORPUS * 2) + "\n")
    return path


def test_simcse_loss_prefers_matching_rows():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    matched = simcse_loss(z, z + 0.01 * torch.randn(8, 16))
    shuffled = simcse_loss(z, z[torch.randperm(8)])
    assert matched < 0.1 < shuffled


def test_mntp_loss_reads_the_previous_position():
    hidden = torch.zeros(1, 3, 4)
    hidden[0, 1] = torch.tensor([10.0, 0, 0, 0])  # position 1 predicts the token at position 2
    head = torch.nn.Linear(4, 4, bias=False)
    head.weight.data = torch.eye(4)
    masked = torch.tensor([[False, False, True]])
    right = mntp_loss(hidden, head, torch.tensor([[0, 0, 0]]), masked)
    wrong = mntp_loss(hidden, head, torch.tensor([[0, 0, 3]]), masked)
    assert right < 0.01 and wrong > 5


def test_mask_tokens_skips_specials_padding_and_first_position(tiny_encoder):
    batch, _ = tiny_encoder.tokenize(["a cat sat on the mat", "dogs", "the quick brown fox jumps over"])
    masked_ids, masked = mask_tokens(batch, tiny_encoder.tokenizer, 0.5, torch.Generator().manual_seed(0))
    assert masked.any(1).all()  # at least one per row
    assert not masked[:, 0].any()
    assert not (masked & (batch["attention_mask"] == 0)).any()
    special = set(tiny_encoder.tokenizer.all_special_ids)
    assert not any(int(t) in special for t in batch["input_ids"][masked])
    assert (masked_ids[masked] != batch["input_ids"][masked]).all() or len(special) == 0
    assert torch.equal(masked_ids[~masked], batch["input_ids"][~masked])


def test_attention_dropout_makes_two_views_differ(tiny_encoder):
    batch, _ = tiny_encoder.tokenize(["a cat sat on the mat"])
    model = tiny_encoder.model
    model.train()
    set_attention_dropout(model, 0.5)
    a, b = tiny_encoder.forward(**batch), tiny_encoder.forward(**batch)
    assert not torch.allclose(a, b)
    set_attention_dropout(model, 0.0)
    assert torch.allclose(tiny_encoder.forward(**batch), tiny_encoder.forward(**batch))
    model.eval()


def test_stage_objective_validation():
    with pytest.raises(ValueError, match="needs targets"):
        StageConfig(name="x", steps=1)
    with pytest.raises(ValueError, match="takes no targets"):
        StageConfig(name="x", objective="simcse", targets="data", steps=1)


def test_llm2vec_style_run_trains_resumes_and_builds_no_targets(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus)
    cfg = Config.model_validate({**cfg.to_dict(), "stages": [
        {"name": "mntp", "objective": "mntp", "steps": 4}, {"name": "simcse", "objective": "simcse", "steps": 4}]})
    cfg.model.attention = "bidirectional"
    cfg.train.simcse_dropout = 0.3
    full = train(cfg, tmp_path / "full", show_progress=False)
    assert not (full / "targets").exists() or not any((full / "targets").iterdir())
    before = load_file(str(tiny_dir / "model.safetensors"))
    after = load_file(str(full / "final" / "model.safetensors"))
    top = [k for k in after if "layers.2." in k]  # the trainable top layer moved
    assert top and any(not torch.equal(before[k], after[k]) for k in top)
    run = tmp_path / "cut"
    train(cfg, run, stop_after_steps=6, show_progress=False)  # inside the simcse stage (dropout RNG in the checkpoint)
    train(cfg, run, resume=True, show_progress=False)
    resumed = load_file(str(run / "final" / "model.safetensors"))
    assert all(torch.equal(after[k], resumed[k]) for k in after)
