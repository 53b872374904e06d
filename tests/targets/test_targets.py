import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from helpers import data_driven_configs
from text2token.config import DataDrivenConfig, ModelDerivedConfig
from text2token.targets.data_driven import DataDrivenTargets, count_matrix, topk_rows
from text2token.targets.model_derived import ModelDerivedTargets, mix
from text2token.targets.vocab import VocabFilter


def _tid(tokenizer, word):
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{word!r} should be one token in the tiny vocabulary, got {ids}"
    return ids[0]


def test_vocab_filter_flags(tiny):
    _, tok = tiny
    vf = VocabFilter.from_tokenizer(tok)
    assert vf.special[tok.pad_token_id] and vf.special[tok.eos_token_id]
    assert vf.stopword[_tid(tok, "the")]
    assert not vf.stopword[_tid(tok, "cat")]
    comma = tok.convert_tokens_to_ids(",") if "," in tok.get_vocab() else tok(",")["input_ids"][0]
    assert vf.punct[comma]
    cat_bare = tok("cat", add_special_tokens=False)["input_ids"]
    assert vf.fragment[cat_bare[0]], "a piece without the word-start marker is a fragment"
    allowed = vf.allowed()
    assert allowed[_tid(tok, "cat")] and not allowed[_tid(tok, "the")]
    assert vf.allowed(stopwords=False)[_tid(tok, "the")]


def test_keep_stopwords_exempts_words_from_the_stopword_filter(tiny):
    _, tok = tiny
    vf = VocabFilter.from_tokenizer(tok, keep_stopwords=["ON", " after "])
    assert not vf.stopword[_tid(tok, "on")] and not vf.stopword[_tid(tok, "after")]
    assert vf.stopword[_tid(tok, "the")], "words not listed stay stop words"
    cfg = DataDrivenConfig(top_k=8, min_df=1, max_df=1.0)
    corpus = ["the cat sat on the mat", "the dog sat on the log"]
    plain = DataDrivenTargets(tok, len(tok), cfg).fit([corpus])
    kept = DataDrivenTargets(tok, len(tok), cfg.model_copy(update={"keep_stopwords": ["on"]})).fit([corpus])
    on = _tid(tok, "on")
    assert on not in plain.transform(corpus[:1])[0][0]
    ids, w = kept.transform(corpus[:1])
    assert on in ids[0][w[0] > 0] and _tid(tok, "the") not in ids[0][w[0] > 0]


def test_data_driven_hand_checked(tiny):
    """corpus: 'cat cat dog', 'dog sat', 'cat ran'  (N=3; df: cat 2, dog 2, sat 1, ran 1)."""
    _, tok = tiny
    cfg = DataDrivenConfig(top_k=2, tf="log", idf="smooth", min_df=1, max_df=1.0)
    dd = DataDrivenTargets(tok, len(tok), cfg)
    corpus = ["cat cat dog", "dog sat", "cat ran"]
    dd.fit(iter([corpus]))
    cat, dog, sat = _tid(tok, "cat"), _tid(tok, "dog"), _tid(tok, "sat")
    assert dd.n_docs == 3 and dd.df[cat] == 2 and dd.df[sat] == 1
    ids, w = dd.transform(["cat cat dog", "dog sat", "the on"])
    idf2, idf1 = math.log(4 / 3) + 1, math.log(4 / 2) + 1
    w_cat, w_dog = (1 + math.log(2)) * idf2, 1 * idf2
    assert ids[0].tolist() == [cat, dog]
    assert w[0] == pytest.approx([w_cat / (w_cat + w_dog), w_dog / (w_cat + w_dog)], rel=1e-5)
    assert ids[1].tolist() == [sat, dog]  # sat is rarer: higher idf
    assert w[1] == pytest.approx([idf1 / (idf1 + idf2), idf2 / (idf1 + idf2)], rel=1e-5)
    assert w[2].sum() == 0.0, "only stop words: no target"


def test_data_driven_df_filters_and_options(tiny):
    _, tok = tiny
    corpus = ["cat dog", "cat sat", "cat ran", "dog ran"]
    cat, dog = _tid(tok, "cat"), _tid(tok, "dog")
    dd = DataDrivenTargets(tok, len(tok), DataDrivenConfig(top_k=4, min_df=1, max_df=0.5)).fit(iter([corpus]))
    ids, w = dd.transform(["cat dog"])
    assert cat not in ids[0][w[0] > 0], "cat is in 3/4 > 50% of texts: removed by max_df"
    dd2 = DataDrivenTargets(tok, len(tok), DataDrivenConfig(top_k=4, min_df=2, max_df=1.0)).fit(iter([corpus]))
    ids, w = dd2.transform(["cat sat"])
    assert set(ids[0][w[0] > 0].tolist()) == {cat}, "sat is in 1 text < min_df=2"
    binary = DataDrivenTargets(tok, len(tok), DataDrivenConfig(top_k=4, min_df=1, max_df=1.0, tf="binary",
                                                               idf="none")).fit(iter([corpus]))
    ids, w = binary.transform(["cat cat cat dog"])
    assert w[0][w[0] > 0] == pytest.approx([0.5, 0.5])
    assert set(ids[0][:2].tolist()) == {cat, dog}


def test_count_matrix_and_topk_rows():
    m = count_matrix([[3, 1, 3, 3], [], [2]], vocab_size=5)
    assert m.toarray().tolist() == [[0, 1, 0, 3, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    ids, vals = topk_rows(sp.csr_matrix(np.array([[0.1, 0.5, 0.3, 0.0], [0, 0, 0, 0], [1.0, 0, 2.0, 3.0]])), 2)
    assert ids.tolist() == [[1, 2], [0, 0], [3, 2]]
    assert np.allclose(vals, [[0.5, 0.3], [0, 0], [3.0, 2.0]])


def test_mix_merges_duplicates_and_renormalises():
    a_ids, a_w = np.array([[1, 2]]), np.array([[0.6, 0.4]], dtype=np.float32)
    b_ids, b_w = np.array([[2, 3]]), np.array([[0.5, 0.5]], dtype=np.float32)
    ids, w = mix(a_ids, a_w, b_ids, b_w, 0.5, vocab_size=5)
    got = dict(zip(ids[0].tolist(), w[0].tolist()))
    assert got[1] == pytest.approx(0.3) and got[2] == pytest.approx(0.45) and got[3] == pytest.approx(0.25)
    assert w.sum() == pytest.approx(1.0)


def test_model_derived_prompt_equals_causal_lm_next_token(tiny_encoder):
    enc = tiny_encoder
    tok = enc.tokenizer
    cfg = ModelDerivedConfig(source="prompt", prompt='This: "{text}" means "', top_k=5, temperature=2.0,
                             filter_vocab=False, mix_data=0.0)
    vf = VocabFilter.from_tokenizer(tok, enc.vocab_size)
    md = ModelDerivedTargets(enc, cfg, vf)
    ids, w = md.transform(["the cat sat"])
    full = tok(['This: "the cat sat" means "'], return_tensors="pt")
    with torch.no_grad():
        logits = enc.model(**full).logits[0, -1] / 2.0
    allowed = torch.from_numpy(vf.allowed(special=True, punctuation=False, stopwords=False, fragments=False))
    probs = torch.softmax(logits, -1).masked_fill(~allowed, 0)
    top = probs.topk(5)
    assert ids[0].tolist() == top.indices.tolist()
    assert w[0] == pytest.approx((top.values / top.values.sum()).tolist(), rel=1e-4)
    assert enc.settings.pooling == "mean", "the training encoder's own settings are untouched"


def test_several_prompts_average_each_prompts_distribution(tiny_encoder):
    enc = tiny_encoder
    vf = VocabFilter.from_tokenizer(enc.tokenizer, enc.vocab_size)
    texts = ["the cat sat", "a dog ran"]
    one = ModelDerivedConfig(prompt='This: "{text}" means "', top_k=6, mix_data=0.0, filter_vocab=False)
    two = one.model_copy(update={"prompt": "In short, {text} is about"})
    both = ModelDerivedConfig(**{**one.model_dump(), "prompt": [one.prompt, two.prompt]})
    singles = [ModelDerivedTargets(enc, c, vf).transform(texts) for c in (one, two)]
    ids, w = ModelDerivedTargets(enc, both, vf).transform(texts)
    assert ids.shape == (2, 6) and w.sum(1) == pytest.approx([1.0, 1.0], abs=1e-5)
    for r in range(2):
        mean = {}
        for s_ids, s_w in singles:
            for t, p in zip(s_ids[r].tolist(), s_w[r].tolist()):
                mean[t] = mean.get(t, 0.0) + p / 2
        kept = sorted(mean, key=mean.get, reverse=True)[:6]
        total = sum(mean[t] for t in kept)
        got = dict(zip(ids[r].tolist(), w[r].tolist()))
        assert set(got) == set(kept) and all(got[t] == pytest.approx(mean[t] / total, rel=1e-4) for t in kept)
        assert set(got) != set(singles[0][0][r].tolist()), "the second prompt changes the target"


def test_every_target_prompt_needs_its_text_slot():
    with pytest.raises(ValueError, match="text"):
        ModelDerivedConfig(prompt=['Say "{text}" "', "no slot here"])
    with pytest.raises(ValueError, match="at least one prompt"):
        ModelDerivedConfig(prompt=[])
    assert ModelDerivedConfig(source="stage1").source == "stage1", "stage1 ignores the default prompts"


def test_model_derived_mixes_data_driven(tiny_encoder):
    enc = tiny_encoder
    tok = enc.tokenizer
    vf = VocabFilter.from_tokenizer(tok, enc.vocab_size)
    dd = DataDrivenTargets(tok, enc.vocab_size, DataDrivenConfig(top_k=3, min_df=1, max_df=1.0), vf)
    dd.fit(iter([["cat dog", "dog sat", "cat ran"]]))
    md = ModelDerivedTargets(enc, ModelDerivedConfig(top_k=4, mix_data=0.25), vf, dd)
    ids, w = md.transform(["cat sat", "the on"])
    assert ids.shape == (2, 7)
    assert w.sum(1) == pytest.approx([1.0, 1.0], abs=1e-5)
    d_ids, d_w = dd.transform(["cat sat"])
    got = dict(zip(ids[0].tolist(), w[0].tolist()))
    for t, p in zip(d_ids[0].tolist(), d_w[0].tolist()):
        if p > 0:
            assert got[t] >= 0.25 * p - 1e-6
    assert vf.allowed(fragments=False)[ids[1][w[1] > 0]].all(), "model-derived tokens pass the vocabulary filter"


# --- the vectorised data-driven path equals the original implementation (benchmarks/targets.py keeps it) ------
@pytest.mark.parametrize("cfg", data_driven_configs())
def test_data_driven_vectorised_equals_reference(tiny, cfg):
    from helpers import TINY_CORPUS

    _, tok = tiny
    texts = TINY_CORPUS + ["cat cat cat dog dog zebra", "the the the", "Paris, France: 42 giraffes!",
                           "photosynthesis photosynthesis energy light", "x"]
    dd = DataDrivenTargets(tok, len(tok), cfg).fit(iter([texts[:6], texts[6:]]))
    reference_df = np.bincount(
        np.concatenate([np.unique(r) for r in tok([dd.prefix + t for t in texts], add_special_tokens=False)
                        ["input_ids"]]), minlength=len(tok))
    assert np.array_equal(dd.df, reference_df)
    tw = dd.token_weights()
    ids, w = dd.transform(texts, tw)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: the benchmarks package
    from benchmarks.targets import original_transform

    ref_ids, ref_w = original_transform(dd, texts, tw)
    assert ids.dtype == ref_ids.dtype and w.dtype == ref_w.dtype
    assert np.array_equal(ids, ref_ids) and np.array_equal(w, ref_w), "byte-identical targets"


def test_word_start_twins_map_unmarked_words_to_their_marked_twin(tiny_encoder):
    from text2token.targets.vocab import word_start_twins

    tok = tiny_encoder.tokenizer
    twins = word_start_twins(tok, tiny_encoder.vocab_size)
    vocab = tok.get_vocab()
    assert twins[vocab["dog"]] == vocab["Ġdog"] and twins[vocab["Ġdog"]] == vocab["Ġdog"]
    for i in tok.all_special_ids:
        assert twins[i] == i
    moved = np.nonzero(twins != np.arange(len(twins)))[0]
    pieces = tok.convert_ids_to_tokens(twins[moved].tolist())
    assert len(moved) >= 3 and all(p.startswith("Ġ") for p in pieces)


def test_model_derived_word_starts_merges_twins(tiny_encoder):
    enc = tiny_encoder
    vf = VocabFilter.from_tokenizer(enc.tokenizer, enc.vocab_size)
    plain_cfg = ModelDerivedConfig(top_k=8, mix_data=0.0, filter_vocab=False)
    texts = ["the cat sat", "a dog ran"]
    ids, w = ModelDerivedTargets(enc, plain_cfg, vf).transform(texts)
    merged_ids, merged_w = ModelDerivedTargets(enc, plain_cfg.model_copy(update={"word_starts": True}),
                                               vf).transform(texts)
    from text2token.targets.vocab import word_start_twins

    twins = word_start_twins(enc.tokenizer, enc.vocab_size)
    for r in range(2):
        want = {}
        for t, p in zip(twins[ids[r]].tolist(), w[r].tolist()):
            want[t] = want.get(t, 0.0) + p
        got = {t: p for t, p in zip(merged_ids[r].tolist(), merged_w[r].tolist()) if p > 0}
        assert got.keys() == {t for t, p in want.items() if p > 0}
        assert all(got[t] == pytest.approx(want[t], rel=1e-5) for t in got)


def test_whole_words_drops_first_pieces_of_longer_words(tiny_encoder):
    tok = tiny_encoder.tokenizer
    vf = VocabFilter.from_tokenizer(tok, tiny_encoder.vocab_size)
    text = "photosynthesis converts the zebras, catapult"
    pieces = tok.convert_ids_to_tokens(tok(" " + text, add_special_tokens=False)["input_ids"])
    split_word = {"Ġzebra", "Ġcat"}  # ' zebras' = ' zebra' + 's', ' catapult' = ' cat' + 'ap' + ...
    assert split_word <= set(pieces), pieces
    base = DataDrivenConfig(top_k=16, min_df=1, max_df=1.0)
    targets = {}
    for whole in (False, True):
        dd = DataDrivenTargets(tok, tiny_encoder.vocab_size, base.model_copy(update={"whole_words": whole}), vf)
        dd.fit(iter([[text, "the cat"]]))
        ids, w = dd.transform([text])
        targets[whole] = set(tok.convert_ids_to_tokens(ids[0][w[0] > 0].tolist()))
    assert split_word <= targets[False] and not split_word & targets[True]
    assert "Ġphotosynthesis" in targets[True], "a whole word followed by a word start or punctuation stays"
