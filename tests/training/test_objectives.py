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
