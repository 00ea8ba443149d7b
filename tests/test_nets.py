"""The building blocks against their definitions: random streams, stacked layers, LSTM, norms,
slot selection, masking, and the bottleneck adapter against an explicit per-sample MLP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_dmash.nets.adapters import AdapterSpec, HyperNetwork
from lit_dmash.nets.encoder import ContextEncoder, EncoderSpec, avg_l1_norm, eval_slots, sim_norm
from lit_dmash.nets.ensemble import EnsembleLinear, EnsembleLSTM, init_members
from lit_dmash.nets.rng import SeedRandom, mix32, mix32_int


def test_mix32_is_a_bijection_on_a_sample_and_stays_in_32_bits():
    x = torch.arange(0, 2**20, dtype=torch.int64) * 4093  # spread over the 32-bit range
    y = mix32(x)
    assert y.min() >= 0 and y.max() < 2**32
    assert y.unique().numel() == x.numel()


def test_mix32_equals_lowbias32_on_python_integers():
    """The definition, computed on unbounded integers, over the whole 32-bit range (the tensor version
    relies on int64 products wrapping around)."""

    def lowbias32(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) % 2**32
        x ^= x >> 15
        x = (x * 0x846CA68B) % 2**32
        return x ^ (x >> 16)

    x = torch.cat([torch.tensor([0, 1, 2**31, 2**32 - 1]), torch.randint(0, 2**32, (4000,), dtype=torch.int64)])
    assert mix32(x).tolist() == [lowbias32(v) for v in x.tolist()] == [mix32_int(v) for v in x.tolist()]


def test_bits_are_the_documented_hash_of_seed_key_counter_and_index():
    """Element j of draw c of a seed with key k is mix(mix(j) ^ mix(k ^ mix(c))), on Python integers;
    the CPU path (keys of a draw in Python) and the device path (tensor ops) give the same draws."""
    rng = SeedRandom([3, 2**32 - 1], stream=1)
    keys = rng.keys.tolist()
    rng.bits((2,))
    rng.counter.fill_(2**32 + 6)  # the counter is hashed modulo 2**32
    expected = [[mix32_int(mix32_int(j) ^ mix32_int(k ^ mix32_int(6))) for j in range(12)] for k in keys]
    assert torch.equal(rng._draw_keys(), rng._draw_keys_on_device())
    assert rng.bits((3, 4)).reshape(2, 12).tolist() == expected
    assert int(rng.counter) == 2**32 + 7


def test_seed_streams_do_not_depend_on_the_other_seeds():
    alone, stacked = SeedRandom([7]), SeedRandom([3, 7, 11])
    for shape in [(5,), (4, 3)]:
        torch.testing.assert_close(alone.uniform(shape)[0], stacked.uniform(shape)[1], rtol=0, atol=0)
    assert not torch.equal(stacked.uniform((8,))[0], stacked.uniform((8,))[2])


def test_uniform_and_normal_have_the_right_moments():
    rng = SeedRandom([0, 1])
    u = rng.uniform((200_000,))
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.002
    z = rng.normal((200_000,))
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    # independent draws: successive uniforms uncorrelated
    a, b = rng.uniform((100_000,)), rng.uniform((100_000,))
    assert abs(torch.corrcoef(torch.stack([a[0], b[0]]))[0, 1].item()) < 0.02


def test_subsets_are_distinct_and_cover_slots_uniformly():
    rng = SeedRandom([5])
    picks = rng.subsets((20_000,), size=10, k=3)[0]
    assert all(len(set(row.tolist())) == 3 for row in picks[:100])
    counts = torch.bincount(picks.flatten(), minlength=10).float()
    assert (counts / counts.sum() - 0.1).abs().max() < 0.01


def test_state_round_trip_continues_the_stream():
    rng = SeedRandom([2, 4])
    rng.uniform((3,))
    state = {k: v.clone() for k, v in rng.state_dict().items()}
    expected = rng.uniform((6,))
    other = SeedRandom([2, 4])
    other.load_state_dict(state)
    assert torch.equal(other.uniform((6,)), expected)


def test_ensemble_linear_members_equal_nn_linear_init_and_output():
    stacked = EnsembleLinear((3,), 5, 4)
    init_members(stacked, [10, 11, 12])
    x = torch.randn(3, 7, 5)
    out = stacked(x)
    for i, seed in enumerate([10, 11, 12]):
        g = torch.Generator().manual_seed(seed)
        ref = nn.Linear(5, 4)
        bound = 1 / math.sqrt(5)
        with torch.no_grad():
            ref.weight.uniform_(-bound, bound, generator=g)
            ref.bias.uniform_(-bound, bound, generator=g)
        torch.testing.assert_close(stacked.weight[i], ref.weight)
        torch.testing.assert_close(out[i], ref(x[i]))


def test_member_init_does_not_depend_on_the_stack():
    one, three = EnsembleLinear((1, 2), 4, 4), EnsembleLinear((3, 2), 4, 4)
    init_members(one, [9])
    init_members(three, [1, 9, 2])
    assert torch.equal(one.weight[0], three.weight[1])


def test_ensemble_lstm_equals_nn_lstm():
    lstm = EnsembleLSTM((2,), 6, 5)
    init_members(lstm, [0, 1])
    x = torch.randn(2, 4, 7, 6)
    out = lstm(x)
    for i in range(2):
        ref = nn.LSTM(6, 5, batch_first=True)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(lstm.weight_ih[i])
            ref.weight_hh_l0.copy_(lstm.weight_hh[i])
            ref.bias_ih_l0.copy_(lstm.bias_ih[i])
            ref.bias_hh_l0.copy_(lstm.bias_hh[i])
        _, (h, _) = ref(x[i])
        torch.testing.assert_close(out[i], h[0], rtol=1e-5, atol=1e-6)


def test_simnorm_output_lies_on_two_simplices():
    z = sim_norm(torch.randn(100, 8) * 5)
    groups = z.view(100, 2, 4)
    assert (groups >= 0).all()
    torch.testing.assert_close(groups.sum(-1), torch.ones(100, 2))


def test_avgl1norm_makes_each_slot_mean_abs_one():
    x = avg_l1_norm(torch.randn(4, 9, 32) * 3)
    torch.testing.assert_close(x.abs().mean(-1), torch.ones(4, 9))


def test_eval_slots_are_fixed_and_keep_first_and_last():
    assert eval_slots(24, 4).tolist() == [0, 7, 15, 23]
    slots = eval_slots(128, 25)
    assert slots[0] == 0 and slots[-1] == 127 and len(slots.unique()) == 25


def _encoder(kind="lstm", window=10, fraction=0.5, seeds=(0,)):
    spec = EncoderSpec(kind=kind, window=window, select_fraction=fraction)
    enc = ContextEncoder((len(seeds),), 3, 2, spec)
    init_members(enc, list(seeds))
    return enc


def _window(seeds=1, batch=6, k=10):
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(seeds, batch, k, 3, generator=g)
    return obs, torch.randn(seeds, batch, k, 2, generator=g), obs + torch.randn(seeds, batch, k, 3, generator=g)


def test_eval_mode_encoder_is_deterministic_and_reads_only_the_fixed_slots():
    enc = _encoder()
    obs, act, nxt = _window()
    z = enc(obs, act, nxt)
    torch.testing.assert_close(z, enc(obs, act, nxt))
    keep = eval_slots(10, 5)
    other = [t.clone() for t in (obs, act, nxt)]
    free = [i for i in range(10) if i not in keep.tolist()]
    for t in other:
        t[:, :, free] = 99.0
    torch.testing.assert_close(z, enc(*other))


def test_training_masking_zeroes_whole_vectors_at_the_configured_rate():
    enc = _encoder()
    obs, act, nxt = _window(batch=4000)
    captured = {}
    enc.embed.register_forward_hook(lambda m, inp, out: captured.update(x=inp[0]))
    enc(obs, act, nxt, SeedRandom([1]), p_mask=0.3)
    x = captured["x"][0]  # [B, k, 3 + 2 + 3]
    parts = [x[..., :3], x[..., 3:5], x[..., 5:]]
    for part in parts:
        zero = (part == 0).all(-1)
        partly = (part == 0).any(-1) & ~zero
        assert not partly.any()  # a vector is masked whole or not at all
        assert abs(zero.float().mean().item() - 0.3) < 0.02


def test_pearl_kl_is_zero_at_the_prior():
    enc = _encoder("plstm")
    obs, act, nxt = _window()
    with torch.no_grad():  # LayerNorm affine to (0, log(e - 1)): mean 0, softplus(.) = 1 -> N(0, 1)
        enc.head_norm.weight.zero_()
        enc.var_norm.weight.zero_()
        enc.var_norm.bias.fill_(math.log(math.e - 1))
    kl = enc.kl(obs, act, nxt, SeedRandom([0]))
    torch.testing.assert_close(kl, torch.zeros_like(kl), atol=1e-6, rtol=0)


def test_bottleneck_adapter_equals_an_explicit_per_sample_mlp():
    spec = AdapterSpec("bottleneck", width=16, rank=2)
    hyper = HyperNetwork((2,), 8, (64, 64), spec)
    init_members(hyper, [0, 1])
    z, h = torch.randn(2, 5, 8), torch.randn(2, 5, 16)
    params = hyper(z)
    assert params.shape[-1] == 2 * 16 * 2 + 2 + 16 == spec.num_params
    out = spec.apply(h, params)
    factorised = spec.apply_factorised(h, hyper.hidden(z), hyper.out.weight, hyper.out.bias)
    for s in range(2):
        for b in range(5):  # the authors' target network: W1 (2 x 16), b1, W2 (16 x 2), b2, ReLU between
            w1t, b1, w2, b2 = params[s, b].split([32, 2, 32, 16])
            w1 = w1t.view(16, 2).T  # stored transposed (see AdapterSpec.apply)
            hidden = torch.relu(w1 @ h[s, b] + b1)
            expected = h[s, b] + w2.view(16, 2) @ hidden + b2
            torch.testing.assert_close(out[s, b], expected)
            torch.testing.assert_close(factorised[s, b], expected, rtol=1e-5, atol=1e-5)


def test_shared_adapter_broadcasts_over_the_twin_dim():
    spec = AdapterSpec("bottleneck", width=8, rank=1)
    params, h = torch.randn(3, 4, spec.num_params), torch.randn(3, 2, 4, 8)
    out = spec.apply(h, params)
    for twin in range(2):
        torch.testing.assert_close(out[:, twin], spec.apply(h[:, twin], params))


@pytest.mark.parametrize("kind", ["scale_shift", "lowrank", "full"])
def test_our_adapters_start_at_the_identity(kind):
    spec = AdapterSpec(kind, width=8, rank=2)
    hyper = HyperNetwork((1,), 4, (16,), spec)
    init_members(hyper, [0])
    h = torch.randn(1, 3, 8)
    torch.testing.assert_close(spec.apply(h, hyper(torch.randn(1, 3, 4))), h)


def test_transposed_linear_loads_a_checkpoint_of_the_old_layout(tmp_path):
    """A state dict saved when every weight was `[out, in]` (version 1) loads into `[in, out]` storage."""
    layer = EnsembleLinear((2,), 3, 5, transposed=True)
    init_members(layer, [0, 1])
    old = layer.state_dict()
    old["weight"] = old["weight"].transpose(-1, -2).contiguous()
    old._metadata[""]["version"] = 1
    torch.save(old, tmp_path / "old.pt")
    fresh = EnsembleLinear((2,), 3, 5, transposed=True)
    fresh.load_state_dict(torch.load(tmp_path / "old.pt", weights_only=True))
    assert torch.equal(fresh.weight, layer.weight)
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(fresh(x), layer(x))


@pytest.mark.parametrize("kind", ["bottleneck", "scale_shift", "lowrank", "full"])
@pytest.mark.parametrize("twins", [False, True])
def test_grouped_adapter_equals_the_per_sample_form(kind, twins):
    """Weights shared by blocks of consecutive samples (a context per sub-env) give the per-sample result."""
    spec = AdapterSpec(kind, width=8, rank=2)
    groups, size = 3, 4
    params = torch.randn(2, *([2] if twins else []), groups, spec.num_params)
    h = torch.randn(2, *([2] if twins else []), groups * size, 8)
    per_sample = spec.apply(h, params.repeat_interleave(size, dim=-2))
    torch.testing.assert_close(spec.apply_grouped(h, params, size), per_sample)


def test_subsets_are_the_smallest_uniforms_in_order_ties_by_index():
    """`subsets` is `uniform(...).argsort()[..., :k]` of the same draw, ties broken by slot index."""
    rng, twin = SeedRandom([3, 8]), SeedRandom([3, 8])
    picks = rng.subsets((50,), size=40, k=9)
    noise = twin.uniform((50, 40))
    keys = noise.double() + torch.arange(40) * 2.0**-32  # uniforms are 2**-24 apart: ties go by index
    torch.testing.assert_close(picks, keys.argsort(dim=-1)[..., :9], rtol=0, atol=0)


def test_slot_gather_reads_strided_windows_like_plain_indexing():
    from lit_dmash.nets.encoder import _gather_slots

    full = torch.randn(2, 5, 9, 3)
    window = full[..., 1:, :]  # a training window: a slice of the replay's K + 1 slots
    slots = torch.randint(0, 8, (2, 5, 4))
    expected = torch.stack([torch.stack([window[s, b, slots[s, b]] for b in range(5)]) for s in range(2)])
    assert torch.equal(_gather_slots(window, slots), expected)
    assert torch.equal(_gather_slots(window.contiguous(), slots), expected)
    fixed = torch.tensor([0, 3, 7]).view(1, 1, 3)
    assert torch.equal(_gather_slots(window, fixed), window[:, :, [0, 3, 7]])
