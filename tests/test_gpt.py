"""The gpt model: causality, the key/value cache, sliding generation, GPT-2 layout, tying."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo import config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def tiny_gpt(**overrides) -> torch.nn.Module:
    cfg = {"n_layer": 2, "n_head": 2, "n_embd": 16, **overrides}
    torch.manual_seed(0)
    return zoo.get_model("gpt", config=cfg, vocab_size=11, block_size=8).eval()


def test_future_tokens_do_not_change_past_logits():
    model = tiny_gpt()
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = a.clone()
    b[0, 4:] = torch.tensor([9, 10])
    with torch.no_grad():
        la, lb = model(a), model(b)
    assert torch.allclose(la[:, :4], lb[:, :4], atol=1e-6)
    assert not torch.allclose(la[:, 4:], lb[:, 4:])


def test_cache_gives_the_same_logits_as_a_full_forward():
    model = tiny_gpt()
    idx = torch.tensor([[1, 5, 2, 7, 3, 3, 9, 4]])
    with torch.no_grad():
        full = model(idx)  # (1, 8, V)
        logits, past = model(idx[:, :3], return_cache=True)
        steps = [logits]
        for t in range(3, 8):
            logits, past = model(idx[:, t:t + 1], past, return_cache=True)
            steps.append(logits)
        # several new tokens after a cache use the offset causal mask
        _, past2 = model(idx[:, :2], return_cache=True)
        multi, _ = model(idx[:, 2:6], past2, return_cache=True)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    assert torch.allclose(multi, full[:, 2:6], atol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"bias": False, "activation": "relu"}])
def test_decode_step_matches_the_module_forward(overrides):
    from zoo_lm.gpt import StaticCache

    model = tiny_gpt(**overrides)
    idx = torch.tensor([[1, 5, 2, 7, 3, 3, 9, 4], [4, 4, 8, 1, 2, 10, 6, 5]])  # a batch of two
    with torch.inference_mode():
        full = model(idx)  # (2, 8, V)
        _, past = model(idx[:, :3], return_cache=True)
        cache = StaticCache.from_past(past, model.block_size)
        steps = [model.decode_step(idx[:, t], cache) for t in range(3, 8)]  # each (2, V)
    assert cache.length == 8
    assert torch.allclose(torch.stack(steps, 1), full[:, 3:], atol=1e-5)


def test_decode_step_matches_the_forward_under_bf16_autocast():
    """Training and cached decoding share one precision policy: bf16 matmuls, float32 logits."""
    from zoo_lm.gpt import StaticCache

    model = tiny_gpt()
    idx = torch.tensor([[1, 5, 2, 7, 3, 3, 9, 4], [4, 4, 8, 1, 2, 10, 6, 5]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(idx)
        _, past = model(idx[:, :3], return_cache=True)
        cache = StaticCache.from_past(past, model.block_size)
        steps = torch.stack([model.decode_step(idx[:, t], cache) for t in range(3, 8)], 1)
        plain = model(idx)  # the same again: what bf16 itself leaves as noise between equal computations
    assert full.dtype == steps.dtype == torch.float32  # float32_linear on both paths
    assert torch.allclose(full, plain)
    assert torch.allclose(steps, full[:, 3:], atol=2e-2, rtol=0), (steps - full[:, 3:]).abs().max()


def test_cached_generation_matches_a_reference_loop_beyond_the_context():
    """30 greedy tokens with an 8-token context: the cache is rebuilt from the last 4 tokens when full."""
    model = tiny_gpt()
    prompt = torch.tensor([[1, 2, 3]])
    got = [int(t) for t in model.generate(prompt, 30, temperature=0.0)]
    seq, want, past = prompt, [], None
    with torch.no_grad():
        for _ in range(30):
            if past is None or past[0][0].size(2) >= 8:
                logits, past = model(seq[:, -4:] if past is not None else seq, return_cache=True)
            else:
                logits, past = model(seq[:, -1:], past, return_cache=True)
            nxt = int(logits[0, -1].argmax())
            want.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
    assert got == want


def test_greedy_generation_with_and_without_cache_agree_inside_the_context():
    model = tiny_gpt()
    prompt = torch.tensor([[1, 2]])
    cached = [int(t) for t in model.generate(prompt, 6, temperature=0.0, use_cache=True)]
    plain = [int(t) for t in model.generate(prompt, 6, temperature=0.0, use_cache=False)]
    assert cached == plain and len(cached) == 6


def test_generation_slides_beyond_the_context():
    model = tiny_gpt()
    for use_cache in (True, False):
        out = [int(t) for t in model.generate(torch.tensor([[1, 2, 3]]), 30, temperature=1.0, top_k=3,
                                              generator=torch.Generator().manual_seed(0), use_cache=use_cache)]
        assert len(out) == 30 and all(0 <= t < 11 for t in out)
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_sampling_is_repeatable_with_a_seed_and_top_k_restricts_choices():
    model = tiny_gpt()

    def run(seed, top_k=None):
        g = torch.Generator().manual_seed(seed)
        return [int(t) for t in model.generate(torch.tensor([[1]]), 20, temperature=1.5, top_k=top_k, generator=g)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    # with top_k=1 sampling is greedy
    assert run(3, top_k=1) == [int(t) for t in model.generate(torch.tensor([[1]]), 20, temperature=0.0)]


def test_gpt2_parameter_names_and_tied_head():
    model = tiny_gpt()
    names = set(model.state_dict())
    for key in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.bias",
                "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.bias"):
        assert key in names, key
    assert model.lm_head.weight is model.transformer.wte.weight
    no_bias = tiny_gpt(bias=False)
    assert not any(k.endswith(".bias") for k in no_bias.state_dict())


def test_config_is_validated():
    with pytest.raises(zoo.ConfigError, match="multiple of n_head"):
        config.build(zoo.get_registry().get("model", "gpt").load().Config, {"n_embd": 10, "n_head": 4}, "model")
    with pytest.raises(zoo.ConfigError, match="model.activation"):
        config.build(zoo.get_registry().get("model", "gpt").load().Config, {"activation": "swish"}, "model")


def test_relu_activation_and_dropout_train():
    model = tiny_gpt(activation="relu", dropout=0.2).train()
    idx = torch.randint(0, 11, (3, 8))
    loss = torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten())
    loss.backward()
    assert torch.isfinite(loss) and model.transformer.wte.weight.grad is not None


def test_bf16_autocast_on_cpu_keeps_attention_and_logits_in_float32():
    from zoo.sdk.tensors import attention

    q, k, v = (torch.randn(2, 2, 8, 4, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True)
        assert y.dtype == torch.float32  # the CPU bf16 flash-attention backward is the slow one
        with torch.no_grad():  # inference keeps bf16 (its forward is as fast)
            assert attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True).dtype == torch.bfloat16
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(y, ref, atol=0.05)
    y.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()

    model = tiny_gpt().train()
    idx = torch.tensor([[1, 5, 2, 7, 3, 3, 9, 4]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(idx)
    assert logits.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(logits, model(idx), atol=0.05)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_float32_linear_with_a_bias_under_autocast_matches_float32():
    from zoo.sdk.tensors import float32_linear

    torch.manual_seed(0)
    layer, x = torch.nn.Linear(16, 7), torch.randn(3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16  # what autocast alone would give
        y = float32_linear(layer, x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, layer(x))
    assert float32_linear(layer.bfloat16(), x.bfloat16()).dtype == torch.float32  # a bf16 model's logits too
