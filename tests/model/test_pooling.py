import pytest
import torch

from text2token.errors import Text2TokenError
from text2token.model.pooling import last_token_index, pool


@pytest.fixture()
def batch():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    return hidden, mask


def test_mean_ignores_padding(batch):
    hidden, mask = batch
    out = pool(hidden, mask, "mean")
    assert torch.allclose(out[0], hidden[0, :3].mean(0))
    assert torch.allclose(out[1], hidden[1].mean(0))


def test_eos_takes_last_real_token(batch):
    hidden, mask = batch
    out = pool(hidden, mask, "eos")
    assert torch.equal(out[0], hidden[0, 2])
    assert torch.equal(out[1], hidden[1, 3])


def test_last_token_index_left_padding():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert last_token_index(mask).tolist() == [3, 2]


def test_weighted_mean_by_position(batch):
    hidden, mask = batch
    out = pool(hidden, mask, "weighted_mean")
    w = torch.tensor([1.0, 2.0, 3.0])
    expected = (hidden[0, :3] * w[:, None]).sum(0) / w.sum()
    assert torch.allclose(out[0], expected)
    w4 = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.allclose(out[1], (hidden[1] * w4[:, None]).sum(0) / w4.sum())


def test_unknown_pooling_and_shape_errors(batch):
    hidden, mask = batch
    with pytest.raises(Text2TokenError, match="unknown pooling 'max' \\(choose from mean, eos, weighted_mean\\)"):
        pool(hidden, mask, "max")
    with pytest.raises(ValueError, match="do not match"):
        pool(hidden, mask[:, :3], "mean")
