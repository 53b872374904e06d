import torch

from text2token.model.attention import attention_mode, set_attention


def _hidden(model, ids):
    with torch.no_grad():
        return model.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state


def test_causal_then_bidirectional_then_back(tiny):
    model, _ = tiny
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    changed = ids.clone()
    changed[0, -1] = 10  # change only the last token

    assert attention_mode(model) == "causal"
    a, b = _hidden(model, ids), _hidden(model, changed)
    assert torch.allclose(a[0, :-1], b[0, :-1], atol=1e-6), "causal: earlier tokens must not see later ones"

    set_attention(model, "bidirectional")
    assert attention_mode(model) == "bidirectional"
    a2, b2 = _hidden(model, ids), _hidden(model, changed)
    assert not torch.allclose(a2[0, 0], b2[0, 0], atol=1e-4), "bidirectional: the first token sees the last"

    set_attention(model, "causal")
    assert torch.allclose(_hidden(model, ids), a, atol=1e-6)


def test_bidirectional_with_padding_matches_unpadded(tiny):
    model, _ = tiny
    set_attention(model, "bidirectional")
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    with torch.no_grad():
        padded = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[0, :3]
        plain = model.model(input_ids=ids[:, :3], attention_mask=mask[:, :3]).last_hidden_state[0]
    assert torch.allclose(padded, plain, atol=1e-5)


def test_works_for_qwen2_and_gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen2Config, Qwen2ForCausalLM

    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64)
    for model in (Qwen2ForCausalLM(Qwen2Config(**small)).eval(),
                  Gemma3ForCausalLM(Gemma3TextConfig(head_dim=8, sliding_window=4, **small)).eval()):
        ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
        changed = ids.clone()
        changed[0, -1] = 9
        set_attention(model, "bidirectional")
        a, b = _hidden(model, ids), _hidden(model, changed)
        assert not torch.allclose(a[0, 0], b[0, 0], atol=1e-5), type(model).__name__
        set_attention(model, "causal")
        a, b = _hidden(model, ids), _hidden(model, changed)
        assert torch.allclose(a[0, :-1], b[0, :-1], atol=1e-5), type(model).__name__
