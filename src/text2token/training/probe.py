"""The co-optimisation probe: the vocabulary space and the representation space, measured together in training."""

from __future__ import annotations

import numpy as np
import torch

from ..eval.heldout import retrieval_scores
from .objectives import token_kl


class CoOptimisationProbe:
    """Measures both spaces on held-out (dev) articles every ``eval.every`` steps.

    - vocabulary space: KL(data-driven target || LM head of the embedding) of the held-out passages, and the
      overlap of the embedding's top-k decoded tokens with the target's top-k tokens (k = ``top_k``);
    - representation space: description -> passage retrieval nDCG@10 among the same passages.
    """

    def __init__(self, data_targets, heldout, batch_size: int, top_k: int = 10):
        self.heldout, self.batch_size, self.top_k = heldout, batch_size, top_k
        ids, weights = data_targets.transform(heldout.documents)
        self.ids, self.weights, self.keep = torch.from_numpy(ids), torch.from_numpy(weights), weights.sum(1) > 0

    def _overlap(self, logits: torch.Tensor) -> float:
        k = self.top_k
        predicted = logits.topk(k, dim=-1).indices
        target = self.weights.topk(min(k, self.weights.shape[1]), dim=-1)
        overlaps = []
        for row in np.nonzero(self.keep)[0]:
            wanted = set(self.ids[row][target.indices[row]][target.values[row] > 0].tolist())
            overlaps.append(len(wanted & set(predicted[row].tolist())) / max(1, len(wanted)))
        return float(np.mean(overlaps))

    @torch.no_grad()
    def __call__(self, encoder) -> dict:
        was_training = encoder.model.training
        q = encoder.encode(self.heldout.queries, batch_size=self.batch_size, show_progress_bar=False)
        d = encoder.encode(self.heldout.documents, batch_size=self.batch_size, show_progress_bar=False)
        if was_training:
            encoder.model.train()
        logits = encoder.token_logits(torch.from_numpy(d).to(encoder.device)).cpu()
        return {"vocab_kl": float(token_kl(logits, self.ids, self.weights)),
                f"vocab_top{self.top_k}_overlap": self._overlap(logits),
                "retrieval_ndcg@10": retrieval_scores(q, d)["ndcg@10"]}
