"""Request bodies checked into inputs and options; each problem is a :class:`RequestError` (a 4xx)."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from zoo.serve import Limits

# predict options whose size is a cost the server bounds: name -> the largest value admitted
# (None: --max-new-tokens). Other options go to the model, which checks them (a ConfigError is a 422).
BOUNDED_OPTIONS: dict[str, int | None] = {"max_new_tokens": None, "max_len": None, "beam": 32, "n_best": 32}
# generate's options and their defaults (those of `zoo generate`)
GENERATE_OPTIONS: dict[str, Any] = {"max_new_tokens": 200, "temperature": 0.8, "top_k": None, "seed": None}
MAX_DEPTH = 32  # nesting of arrays and objects in a body; no request needs more than a few
MAX_INT_DIGITS = 30  # digits of an integer in a body (a seed fits in 20)
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed takes
TEMPERATURE = (1e-3, 100.0)  # a sampling temperature is 0 (greedy) or in this range: below it logits overflow
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class RequestError(Exception):
    """A request the server refuses; ``status`` is its HTTP status, the message says what to change."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_json(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> Any:
    """The JSON value of a body, read no further than ``limit`` bytes."""
    too_big = f"over the limit of {limit:,} bytes (--max-body-bytes)"
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise RequestError(413, f"request body of {int(content_length):,} bytes is {too_big}")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body is {too_big}")
    if not body.strip():
        raise RequestError(400, 'empty request body: send a JSON object, e.g. {"inputs": ["some text"]}')
    try:
        text = body.decode("utf-8")  # JSON over HTTP is UTF-8 (RFC 8259)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"request body is not UTF-8 text: {exc}") from None
    return parse_json(text)


def parse_json(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, numbers a float or a short integer holds, shallow nesting, valid Unicode."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise RequestError(400, f"the JSON body nests arrays/objects deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check_unicode(value)
    return value


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise RequestError(422, f"a number in the body has {len(digits.lstrip('-')):,} digits; "
                                f"integers of at most {MAX_INT_DIGITS} digits are accepted")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(422, f"the number {text[:40]} is out of range for a float (at most about 1.8e308)")
    return value


def _constant(name: str) -> float:
    raise RequestError(422, f"{name} is not a number JSON allows: give a finite number")


def _check_unicode(value: Any) -> None:
    """Strings (keys too) must be Unicode text: a lone surrogate such as "\\ud800" cannot be encoded."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestError(400, f"a string in the body holds a lone surrogate (\\u{ord(value[exc.start]):04x}), "
                                    "which is not Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


def _object(body: Any, example: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(422, f"the body must be a JSON object such as {example}, got {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _chars(value: Any) -> int:
    """Characters of an input: a text, a list of words (joined by spaces), an object's fields."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_chars(v) for v in value) + max(len(value) - 1, 0)
    if isinstance(value, dict):
        return sum(len(k) + _chars(v) for k, v in value.items())
    return len(json.dumps(value))  # a number or a flag inside an object


def _check_input(value: Any, where: str, limit: int) -> int:
    if not isinstance(value, str | list | dict):
        raise RequestError(422, f"{where} is {_kind(value)}; an input is a text (a string), a list of words, "
                                'or an object such as {"src": "..."}')
    chars = _chars(value)
    if chars > limit:
        raise RequestError(422, f"{where} has {chars:,} characters, over the limit of {limit:,} (--max-input-chars)")
    return chars


def predict_request(body: Any, options: Iterable[str], limits: Limits) -> tuple[list[Any], dict[str, Any]]:
    """``{"inputs": [...], option: value, ...}`` -> (inputs, options), checked against the model's options."""
    body = _object(body, '{"inputs": ["some text"]}')
    if "inputs" not in body:
        raise RequestError(422, 'missing field "inputs": give a list of inputs, e.g. {"inputs": ["some text"]}')
    inputs = body["inputs"]
    if not isinstance(inputs, list):
        hint = ' (wrap one input in a list: {"inputs": ["..."]})' if isinstance(inputs, str | dict) else ""
        raise RequestError(422, f'"inputs" must be a list of inputs, got {_kind(inputs)}{hint}')
    if not inputs:
        raise RequestError(422, '"inputs" is an empty list: give at least one input')
    if len(inputs) > limits.max_inputs:
        raise RequestError(422, f'"inputs" has {len(inputs):,} inputs, over the limit of {limits.max_inputs:,} '
                                "per request (--max-inputs): send them in several requests")
    total = 0
    for i, value in enumerate(inputs):
        total += _check_input(value, f"inputs[{i}]", limits.max_input_chars)
    if total > limits.max_total_chars:
        raise RequestError(422, f"the inputs have {total:,} characters together, over the budget of "
                                f"{limits.max_total_chars:,} per request (--max-total-chars): send them in several "
                                "requests")
    opts = check_options({k: v for k, v in body.items() if k != "inputs"}, options, "inputs")
    for key, high in BOUNDED_OPTIONS.items():
        value = opts.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > (high or limits.max_new_tokens):
            flag = " (--max-new-tokens)" if high is None else ""
            raise RequestError(422, f'"{key}" is {value}, over the limit of {high or limits.max_new_tokens}{flag}')
    if isinstance(opts.get("temperature"), int | float) and not isinstance(opts["temperature"], bool):
        check_temperature(opts["temperature"])
    if isinstance(opts.get("seed"), int) and not isinstance(opts["seed"], bool):
        _whole(opts, "seed", *SEED_RANGE)  # torch's generator takes a 64-bit seed
    return inputs, opts


def generate_request(body: Any, limits: Limits) -> tuple[str, dict[str, Any]]:
    """``{"prompt": "...", "max_new_tokens": N, "temperature": T, "top_k": K, "seed": S}`` -> (prompt, options)."""
    body = _object(body, '{"prompt": "Once upon a time", "max_new_tokens": 100}')
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise RequestError(422, f'"prompt" must be a string, got {_kind(prompt)}')
    if len(prompt) > limits.max_input_chars:
        raise RequestError(422, f'"prompt" has {len(prompt):,} characters, over the limit of '
                                f"{limits.max_input_chars:,} (--max-input-chars)")
    opts = check_options({k: v for k, v in body.items() if k != "prompt"}, GENERATE_OPTIONS, "prompt")
    opts = {**GENERATE_OPTIONS, **opts}
    _whole(opts, "max_new_tokens", 0, limits.max_new_tokens)
    _whole(opts, "top_k", 1, nullable=True)
    _whole(opts, "seed", *SEED_RANGE, nullable=True)
    check_temperature(opts["temperature"])
    return prompt, opts


def check_temperature(temperature: Any) -> None:
    """0 (greedy) or a number in :data:`TEMPERATURE`; a tinier one overflows the logits into NaN."""
    low, high = TEMPERATURE
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
        raise RequestError(422, f'"temperature" must be a number >= 0 (0 is greedy), got {json.dumps(temperature)}')
    if temperature != 0 and not low <= temperature <= high:
        raise RequestError(422, f'"temperature" must be 0 (greedy) or between {low:g} and {high:g}, '
                                f"got {temperature:g}")


def check_options(given: Mapping[str, Any], known: Iterable[str], main: str) -> dict[str, Any]:
    """``given`` options, each one of ``known`` and a JSON scalar (the model checks its value)."""
    known = list(known)
    for key, value in given.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            fields = ", ".join(f'"{k}"' for k in (main, *known))
            raise RequestError(422, f'unknown field "{key}": {hint}this model takes {fields}')
        if isinstance(value, dict | list):
            raise RequestError(422, f'"{key}" must be a number, a string, true/false or null, got {_kind(value)}')
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(422, f'"{key}" must be a finite number, got {value}')
    return dict(given)


def _whole(opts: Mapping[str, Any], key: str, low: int, high: int | None = None, *, nullable: bool = False) -> None:
    value = opts[key]
    if value is None and nullable:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(422, f'"{key}" must be a whole number{" or null" if nullable else ""}, got {_kind(value)}')
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        raise RequestError(422, f'"{key}" must be {span}, got {value}')
