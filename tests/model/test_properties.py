"""Property tests: any text (unicode, emoji, control characters) gives a finite, normalised target distribution and
a finite embedding, or a clear rejection."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text2token.config import DataDrivenConfig
from text2token.model.encoder import check_texts
from text2token.errors import Text2TokenError
from text2token.model.pooling import pool
from text2token.targets.data_driven import DataDrivenTargets

from helpers import TINY_CORPUS

any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=200)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def data_targets(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    return DataDrivenTargets(tok, len(tok), DataDrivenConfig(top_k=8, min_df=1, max_df=1.0)).fit(iter([TINY_CORPUS]))


@FAST
@given(texts=st.lists(any_text, min_size=1, max_size=6))
def test_data_driven_targets_are_distributions(data_targets, texts):
    ids, w = data_targets.transform(texts)
    assert ids.shape == w.shape == (len(texts), 8)
    assert np.isfinite(w).all() and (w >= 0).all()
    sums = w.sum(1)
    assert np.all((np.abs(sums - 1) < 1e-5) | (sums == 0))
    assert ((ids >= 0) & (ids < data_targets.vocab_size)).all()


@FAST
@given(text=any_text)
def test_encode_any_text_or_clear_rejection(tiny_encoder, text):
    if not text.strip():
        with pytest.raises(Text2TokenError, match="empty or whitespace-only"):
            tiny_encoder.encode([text])
        return
    check_texts([text])
    vec = tiny_encoder.encode([text])
    assert vec.shape == (1, tiny_encoder.hidden_size) and np.isfinite(vec).all()


@FAST
@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5), how=st.sampled_from(["mean", "eos", "weighted_mean"]))
def test_pooling_is_finite_and_ignores_padding(lengths, how):
    hidden = torch.randn(len(lengths), 7, 3)
    mask = torch.tensor([[1] * n + [0] * (7 - n) for n in lengths])
    pooled = pool(hidden, mask, how)
    assert torch.isfinite(pooled).all()
    garbage = hidden.clone()
    garbage[mask == 0] = 1e6
    assert torch.allclose(pool(garbage, mask, how), pooled)
