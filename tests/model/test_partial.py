"""Starting a forward pass part-way gives the full pass's states, on Llama, Qwen2 and Gemma 3 layouts."""

from __future__ import annotations

import pytest
import torch

from text2token.model.attention import set_attention
from text2token.model.partial import layer_inputs, start_at


def _tiny(arch: str):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    if arch == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**common)).eval()
    if arch == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**common)).eval()
    # Gemma 3: sliding-window and global layers alternate, picked by layer index; a scaled embedding
    cfg = tf.Gemma3TextConfig(**common, head_dim=8, sliding_window=3,
                              layer_types=["sliding_attention", "full_attention"] * 2)
    return tf.Gemma3ForCausalLM(cfg).eval()


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_start_at_layer_n_equals_the_full_pass(arch, attention):
    model = set_attention(_tiny(arch), attention)
    ids = torch.randint(3, 64, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # right padding
    mask[2, 4:] = 0
    seen = []
    with torch.no_grad():
        with layer_inputs(model, 2, lambda i, m, s: seen.append((i, m, s))):
            full = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert len(seen) == 1 and torch.equal(seen[0][0], ids) and torch.equal(seen[0][1], mask)
        with start_at(model, 2):
            part = model.model(inputs_embeds=seen[0][2], attention_mask=mask).last_hidden_state
        again = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # layers are back
    real = mask.bool()
    torch.testing.assert_close(part[real], full[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, full)
    # the match above needs the skip: the layer-2 input through every layer gives something else
    with torch.no_grad(), start_at(model, 0):
        wrong = model.model(inputs_embeds=seen[0][2], attention_mask=mask).last_hidden_state
    assert not torch.allclose(wrong[real], full[real], atol=1e-3)


def test_start_at_refuses_a_layer_beyond_the_model():
    from text2token.errors import Text2TokenError

    with pytest.raises(Text2TokenError, match="has 4 layers"):
        with start_at(_tiny("llama"), 4):
            pass
