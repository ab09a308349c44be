"""The work one predict request asks for, counted before it runs, so that no request holds a worker long.

Work is decoding steps times hypotheses, summed over the inputs: ``inputs x new tokens x beam``
(``n_best`` widens the beam, as the seq2py task does). A task that does not decode (a classifier,
a tagger) costs one step an input. Options a request leaves out count at the task's defaults.
"""

from __future__ import annotations

import inspect
from typing import Any

from zoo.serve.requests import RequestError

STEP_OPTIONS = ("max_new_tokens", "max_len")  # predict options that set the tokens decoded per input
# task config fields that bound the tokens decoded when the request leaves the option out
STEP_DEFAULTS = ("max_decode_len", "max_tgt_len")


def _default(task: Any, option: str) -> Any:
    """The default of a predict option: the task's predict signature, else its config."""
    param = inspect.signature(task.predict).parameters.get(option)
    if param is not None and isinstance(param.default, int) and not isinstance(param.default, bool):
        return param.default
    cfg = getattr(task, "config", None)
    for name in STEP_DEFAULTS if option in STEP_OPTIONS else (option,):
        if isinstance(getattr(cfg, name, None), int):
            return getattr(cfg, name)
    return None


def request_work(task: Any, n_inputs: int, options: dict[str, Any]) -> tuple[int, str]:
    """(work, how it was counted) of ``n_inputs`` inputs predicted with ``options``."""
    known = getattr(task, "predict_options", {})
    steps, hypotheses, parts = 1, 1, [f"{n_inputs:,} inputs"]
    for option in STEP_OPTIONS:
        if option in known:
            given = options.get(option)
            steps = max(given if given is not None else (_default(task, option) or 1), 1)  # 0 tokens: one pass
            parts.append(f"{steps:,} tokens ({option})")
            break
    if "beam" in known:
        beam = options.get("beam") or _default(task, "beam") or 1
        hypotheses = max(beam, options.get("n_best") or 1)
        parts.append(f"{hypotheses} hypotheses (beam, n_best)")
    return n_inputs * steps * hypotheses, " x ".join(parts)


def check_work(task: Any, n_inputs: int, options: dict[str, Any], budget: int) -> int:
    """The work of a request; a 422 naming the budget and ``--max-work`` when it is over."""
    work, how = request_work(task, n_inputs, options)
    if work > budget:
        raise RequestError(422, f"this request is {work:,} units of work ({how}), over the budget of {budget:,} "
                                "per request (--max-work): send fewer inputs, or ask for fewer tokens or a "
                                "smaller beam")
    return work
