"""The co-optimisation probe: vocabulary-space and representation-space measures logged during training."""

import json

from text2token.training.loop import train

from helpers import tiny_train_config as _cfg


def test_probe_is_logged_every_n_steps_and_plotted(tiny_dir, corpus, tmp_path):
    cfg = _cfg(tiny_dir, corpus)
    cfg.eval.every = 2
    cfg.eval.probe_articles = 20
    run = train(cfg, tmp_path / "run", show_progress=False)
    probes = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "probe"]
    assert [p["global_step"] for p in probes] == [0, 2, 4, 6, 8]
    for p in probes:
        assert p["vocab_kl"] > 0 and 0 <= p["vocab_top10_overlap"] <= 1 and 0 <= p["retrieval_ndcg@10"] <= 1
    assert probes[-1]["vocab_kl"] != probes[0]["vocab_kl"]  # training moved the vocabulary space
    assert (run / "coopt.png").stat().st_size > 5000


def test_probe_does_not_change_training(tiny_dir, corpus, tmp_path):
    """Probing (eval mode, inference) between steps leaves the trained weights bit-identical."""
    from safetensors.torch import load_file

    plain = train(_cfg(tiny_dir, corpus), tmp_path / "plain", show_progress=False)
    cfg = _cfg(tiny_dir, corpus)
    cfg.eval.every = 3
    cfg.eval.probe_articles = 10
    probed = train(cfg, tmp_path / "probed", show_progress=False)
    a, b = load_file(str(plain / "final" / "model.safetensors")), load_file(str(probed / "final" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
