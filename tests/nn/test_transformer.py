"""The causal trunk: SwiGLU width, causality, and KV-cached decoding equal to one full-sequence pass."""

from __future__ import annotations

import torch

from robo4d.nn.transformer import CausalTransformer, KVCache, TransformerConfig


def test_swiglu_hidden_width_follows_llama() -> None:
    assert TransformerConfig(dim=768, n_layers=1, n_heads=12).ffn_hidden == 2048
    assert TransformerConfig(dim=128, n_layers=1, n_heads=4).ffn_hidden == 512  # 341 rounded up to 256s


def test_outputs_are_causal() -> None:
    torch.manual_seed(0)
    net = CausalTransformer(TransformerConfig(dim=32, n_layers=2, n_heads=4)).eval()
    x = torch.randn(2, 10, 32)
    y = x.clone()
    y[:, 6:] = torch.randn(2, 4, 32)
    torch.testing.assert_close(net(x)[:, :6], net(y)[:, :6])


def test_kv_cache_chunks_equal_full_sequence() -> None:
    torch.manual_seed(0)
    net = CausalTransformer(TransformerConfig(dim=32, n_layers=3, n_heads=4)).eval()
    x = torch.randn(2, 11, 32)
    full = net(x)
    cache, outs = KVCache(), []
    for lo, hi in ((0, 2), (2, 5), (5, 6), (6, 11)):
        outs.append(net(x[:, lo:hi], cache=cache))
    assert cache.length == 11
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=0)


def test_last_only_gives_the_last_row_of_a_full_pass() -> None:
    torch.manual_seed(0)
    net = CausalTransformer(TransformerConfig(dim=32, n_layers=3, n_heads=4)).eval()
    x = torch.randn(2, 11, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x, last_only=True), net(x)[:, -1:], atol=1e-6, rtol=0)
        cache = KVCache()
        net(x[:, :6], cache=cache)
        torch.testing.assert_close(net(x[:, 6:], cache=cache, last_only=True), net(x)[:, -1:], atol=1e-5, rtol=0)
        assert cache.length == 11  # keys and values of every new token were still cached


def test_evicted_tokens_keep_positions_and_one_layer_stays_exact() -> None:
    # With one block, cached keys and values depend on their own token only, so evicting the oldest tokens
    # must give exactly a fresh pass over the kept ones: this pins the rotary positions after eviction.
    torch.manual_seed(0)
    net = CausalTransformer(TransformerConfig(dim=32, n_layers=1, n_heads=4)).eval()
    x = torch.randn(1, 12, 32)
    with torch.no_grad():
        cache = KVCache()
        net(x[:, :9], cache=cache)
        cache.drop_oldest(3)
        assert (cache.length, cache.offset) == (6, 3)
        torch.testing.assert_close(net(x[:, 9:], cache=cache), net(x[:, 3:])[:, 6:], atol=1e-5, rtol=0)
