import pytest
import torch
import torch.nn.functional as F

from text2token.training.objectives import token_kl


def test_matches_kl_div_on_dense_targets():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    ids = torch.stack([torch.randperm(50)[:6] for _ in range(4)])
    w = torch.rand(4, 6)
    w[1, 4:] = 0.0  # padded entries
    w = w / w.sum(1, keepdim=True)
    dense = torch.zeros(4, 50).scatter(1, ids, w)
    expected = F.kl_div(torch.log_softmax(logits, -1), dense, reduction="batchmean")
    got = token_kl(logits, ids, w)
    assert torch.allclose(got, expected, atol=1e-6)


def test_float32_upcast_and_gradient():
    logits = torch.randn(2, 30, dtype=torch.bfloat16, requires_grad=True)
    ids = torch.tensor([[1, 2], [3, 4]])
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    loss = token_kl(logits, ids, w)
    assert loss.dtype == torch.float32
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()


def test_rows_without_target_are_left_out():
    logits = torch.randn(3, 10)
    ids = torch.tensor([[1, 2], [0, 0], [3, 4]])
    w = torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.2, 0.8]])
    both = token_kl(logits, ids, w)
    only = token_kl(logits[[0, 2]], ids[[0, 2]], w[[0, 2]])
    assert torch.allclose(both, only)
    assert token_kl(logits, ids, torch.zeros_like(w)).item() == 0.0


def test_zero_when_prediction_equals_target():
    target = torch.tensor([[0.7, 0.2, 0.1]])
    logits = torch.full((1, 5), -1e4)
    logits[0, :3] = target.log()
    assert token_kl(logits, torch.tensor([[0, 1, 2]]), target).abs().item() < 1e-5


def test_target_contrast_prefers_each_text_its_own_target():
    from text2token.training.objectives import target_contrast_loss

    ids = torch.tensor([[1, 2], [3, 4], [5, 6]])
    w = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    right = torch.full((3, 8), -5.0)
    wrong = torch.full((3, 8), -5.0)
    for i in range(3):
        right[i, ids[i]] = 5.0  # each text predicts its own target
        wrong[i, ids[(i + 1) % 3]] = 5.0  # each predicts its neighbour's
    assert target_contrast_loss(right, ids, w) < 0.01 < 5 < target_contrast_loss(wrong, ids, w)
    # the scores are log-likelihoods: a direct computation of row 0's cross-entropy agrees
    logp = torch.log_softmax(wrong, -1)
    s = torch.stack([(logp[:, ids[j]] * w[j]).sum(-1) for j in range(3)], 1)
    want = torch.nn.functional.cross_entropy(s, torch.arange(3))
    torch.testing.assert_close(target_contrast_loss(wrong, ids, w), want)


def test_target_contrast_leaves_out_rows_without_target():
    from text2token.training.objectives import target_contrast_loss

    logits = torch.randn(3, 8, requires_grad=True)
    ids = torch.tensor([[1, 2], [3, 4], [0, 0]])
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 0.0]])
    loss = target_contrast_loss(logits, ids, w)
    loss.backward()
    assert torch.count_nonzero(logits.grad[2]) == 0
    assert torch.isclose(loss, target_contrast_loss(logits[:2], ids[:2], w[:2]))
    assert target_contrast_loss(logits[:1], ids[:1], w[:1]) == 0


def _train(tiny_dir, corpus, out, objective, **train_kw):
    """Trains the tiny config with every stage on ``objective``: (final weights, losses per step)."""
    from safetensors.torch import load_file

    from helpers import tiny_train_config
    from text2token.training.loop import train

    cfg = tiny_train_config(tiny_dir, corpus, **train_kw)
    for s in cfg.stages:
        s.objective = objective
    losses = []
    final = train(cfg, out, show_progress=False, on_step=lambda r: losses.append(r["loss"])) / "final"
    return load_file(str(final / "model.safetensors")), losses


def test_kl_contrastive_trains_and_weight_zero_is_kl(tiny_dir, corpus, tmp_path):
    kl, kl_losses = _train(tiny_dir, corpus, tmp_path / "kl", "kl")
    zero, zero_losses = _train(tiny_dir, corpus, tmp_path / "zero", "kl_contrastive", contrastive_weight=0.0)
    joint, joint_losses = _train(tiny_dir, corpus, tmp_path / "joint", "kl_contrastive", contrastive_weight=1.0)
    assert zero_losses == pytest.approx(kl_losses) and all(torch.equal(kl[k], zero[k]) for k in kl)
    assert joint_losses[0] > kl_losses[0], "the contrast adds to the loss"
    assert any(not torch.equal(kl[k], joint[k]) for k in kl)


def test_kl_simcse_without_dropout_or_weight_is_kl_and_with_them_differs(tiny_dir, corpus, tmp_path):
    kl, kl_losses = _train(tiny_dir, corpus, tmp_path / "kl", "kl")
    same, same_losses = _train(tiny_dir, corpus, tmp_path / "same", "kl_simcse", contrastive_weight=0.0,
                               simcse_dropout=0.0)
    joint, joint_losses = _train(tiny_dir, corpus, tmp_path / "joint", "kl_simcse", contrastive_weight=1.0,
                                 simcse_dropout=0.3)
    assert same_losses == pytest.approx(kl_losses, rel=1e-4)
    # two views of one batch run other float kernels, which AdamW amplifies: 1.05e-5 measured
    assert all(torch.allclose(kl[k], same[k], atol=3e-5) for k in kl)
    assert joint_losses[0] > kl_losses[0], "SimCSE adds to the loss"
    assert any(not torch.allclose(kl[k], joint[k], atol=1e-5) for k in kl)
