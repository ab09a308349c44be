"""Reranking the beam with a reconstruction model: which snippet best explains its intent?

Beam search ranks hypotheses by the intent-to-code model's own score, log p(code | intent) /
length ** length_penalty. A second model trained the other way (``task.direction =
"code-to-intent"``, the ``seq2py-reverse`` entry) reads each hypothesis and scores how likely it
makes the intent: log p(intent | code), per intent token. With ``task.reranker`` naming that
model, every hypothesis of the beam scores

    beam score + task.rerank_weight * log p(intent | code) / (intent tokens + 1)

and the best of these is the output. The idea is Yin & Neubig's reranker for CoNaLa (ACL 2019,
"Reranking for Neural Semantic Parsing"), reduced to its reconstruction feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zoo import ConfigError, ZooError

Candidate = tuple[float, float, list[int]]  # (beam score, reconstruction score per intent token, ids)


def load_reranker(task: Any, model: Any) -> Any:
    """The code-to-intent model ``task.reranker`` names, loaded once per task and device."""
    import zoo

    param = next(iter(model.parameters()), None)
    device = "cpu" if param is None else str(param.device)
    key = (task.config.reranker, device)
    cached = getattr(task, "_reranker", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        loaded = zoo.load(task.config.reranker, device=device)
    except ZooError as exc:
        raise ConfigError(f"task.reranker: {exc}") from exc
    direction = getattr(loaded.task.config, "direction", None)
    if direction != "code-to-intent" or not hasattr(loaded.task, "sequence_logprobs"):
        raise ConfigError(f"task.reranker: {task.config.reranker} is not a code-to-intent model (its task reads "
                          f"direction={direction!r}); train one with 'zoo train seq2py-reverse'")
    task._reranker = (key, loaded)
    return loaded


def score(task: Any, hyps: Sequence[Sequence[tuple[float, list[int]]]], metas: Sequence[Mapping[str, Any]],
          reranker: Any) -> list[list[Candidate]]:
    """Every hypothesis of every example with its reconstruction score: the mean log-probability per intent
    token (with <eos>) that ``reranker`` gives the example's intent after reading the hypothesis's code.
    An empty hypothesis explains nothing: -inf."""
    examples, where = [], []
    for i, (cands, meta) in enumerate(zip(hyps, metas)):
        for j, (_, ids) in enumerate(cands):
            code = task.decode_ids(ids, meta)
            if code:
                examples.append({"src": meta["intent"], "tgt": code})
                where.append((i, j))
    recon = [[float("-inf")] * len(cands) for cands in hyps]
    for (i, j), (logp, n) in zip(where, reranker.task.sequence_logprobs(reranker.model, examples)):
        recon[i][j] = logp / max(n, 1)
    return [[(s, r, ids) for (s, ids), r in zip(cands, rs)] for cands, rs in zip(hyps, recon)]


def ranked(candidates: Sequence[Candidate], weight: float) -> list[tuple[float, list[int]]]:
    """(combined score, ids) of the candidates, best first: beam score + ``weight`` * reconstruction score."""
    combined = [(s + weight * r if weight else s, ids) for s, r, ids in candidates]
    return sorted(combined, key=lambda c: c[0], reverse=True)
