"""DMA*-SH's parts: gradient routing, one shared adapter, identity at init, expressivity, windows."""

import pytest
import torch
from conftest import collected_batch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from lit_dmash.agents.context import ContextModel
from lit_dmash.config import CollectorConfig, ContextConfig, EnvConfig, SACConfig
from lit_dmash.envs.history import shift_window, transition_entry
from lit_dmash.methods import METHODS, get_method
from lit_dmash.module import ContextualSAC
from lit_dmash.nets import ADAPTER_KINDS, AdaptedMLP, AdapterShape, HyperNetwork, drop_entries

HIDDEN = [32, 32]


def tiny_module(method: str, **context) -> ContextualSAC:
    return ContextualSAC(
        method=method,
        env=EnvConfig(num_envs=4),
        collector=CollectorConfig(frames_per_batch=16, total_frames=64, init_random_frames=16),
        sac=SACConfig(hidden_dims=HIDDEN, batch_size=32),
        context=ContextConfig(history_len=4, encoder_hidden=[16], hypernet_hidden=[16], **context),
    )


def grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    found = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, found, strict=True)]


@pytest.mark.parametrize(
    ("method", "rl_trains_context"), [("dmash", False), ("dma_star", False), ("dmash_rlgrad", True)]
)
def test_gradient_routing(method, rl_trains_context):
    module = tiny_module(method)
    batch = collected_batch(module)
    # One real update first: the hypernetwork starts at exactly the identity (zero output layer),
    # so only its output layer sees gradient on the very first step.
    optimizer = module.configure_optimizers()
    first = module.compute_losses(batch.clone())
    sum(v for k, v in first.items() if k.startswith("loss_")).backward()
    optimizer.step()
    optimizer.zero_grad()
    losses = module.compute_losses(batch.clone())
    context = module.context_model
    shared = [*context.encoder.parameters(), *(context.hypernet.parameters() if context.hypernet else [])]

    from_dynamics = grads(losses["loss_dynamics"], shared)
    assert all(g.abs().sum() > 0 for g in from_dynamics if g.numel()), "E and H learn from the dynamics loss"
    for name in ("loss_actor", "loss_qvalue", "loss_alpha"):
        norm = sum(g.abs().sum() for g in grads(losses[name], shared))
        if rl_trains_context and name != "loss_alpha":
            assert norm > 0, f"{name} must reach E/H in {method}"
        else:
            assert norm == 0, f"{name} leaked {norm} into E/H in {method}"
    # The RL losses do train the actor and critics.
    actor_params = list(module.loss_module.actor_network_params.values(True, True))
    assert sum(g.abs().sum() for g in grads(losses["loss_actor"], actor_params)) > 0


def test_dynamics_actor_and_critics_read_one_shared_adapter():
    module = tiny_module("dmash")
    batch = collected_batch(module)
    seen, calls = {}, []

    def record(name):
        def hook(module, args, output) -> None:  # a hook that returns something replaces the output
            seen.setdefault(name, args[-1])

        return hook

    module.context_model.dynamics.register_forward_hook(record("dynamics"))
    module.actor.module[0].module.mlp.register_forward_hook(record("actor"))
    module.context_model.hypernet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]) and None)
    module.compute_losses(batch)
    assert calls == [64, 64], "one hypernetwork call per window batch: t (with gradient) and t+1 (without)"
    assert torch.equal(seen["dynamics"].detach(), batch["adapter"])
    assert torch.equal(seen["actor"], batch["adapter"])
    qvalue = module.loss_module.qvalue_network
    assert "adapter" in qvalue.in_keys and qvalue.module.adapter_source == "params"


@pytest.mark.parametrize("kind", ADAPTER_KINDS)
def test_adapter_starts_at_identity_and_can_learn(kind):
    torch.manual_seed(0)
    shape = AdapterShape(kind, width=16, rank=3)
    adapted = AdaptedMLP(5, 3, [16, 16], adapter=shape, adapter_source="params")
    plain = AdaptedMLP(5, 3, [16, 16])
    plain.load_state_dict(adapted.state_dict())
    hypernet = HyperNetwork(4, shape, [8])
    x, z = torch.randn(10, 5), torch.randn(10, 4)
    out = adapted(x, hypernet(z))
    torch.testing.assert_close(out, plain(x), rtol=0, atol=1e-6)
    out.pow(2).sum().backward()
    assert hypernet.net[-1].weight.grad.abs().sum() > 0, "identity at init must not be a dead end"


def test_expressivity_adapter_fits_a_sign_flip_that_no_context_cannot():
    """Δo = mode * a: the same action moves the state in opposite directions in the two modes."""
    torch.manual_seed(0)
    n, k, obs_dim, act_dim = 512, 8, 2, 2
    mode = torch.where(torch.rand(n) < 0.5, 1.0, -1.0)[:, None]

    def transitions(count):
        obs, act = torch.randn(count, obs_dim), torch.rand(count, act_dim) * 2 - 1
        return obs, act, obs + mode.repeat_interleave(count // n, 0) * act

    obs, act, nxt = transitions(n)
    w_obs, w_act, w_nxt = (t.view(n, k, -1) for t in transitions(n * k))
    data = TensorDict(
        {
            "observation": obs,
            "action": act,
            ("next", "observation"): nxt,
            "history": transition_entry(w_obs, w_act, w_nxt),
            "history_mask": torch.ones(n, k, dtype=torch.bool),
        },
        batch_size=[n],
    )
    cfg = ContextConfig(history_len=k, encoder_hidden=[32], hypernet_hidden=[32], p_mask=0.0, lr_dynamics=3e-3)
    final = {}
    for name in ("dmash", "dr_style"):
        method = get_method("dmash")
        model = ContextModel(method, obs_dim, act_dim, cfg, [32, 32])
        model.normalizer.update(transition_entry(obs, act, nxt))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(300):
            if name == "dmash":
                loss = model.prepare_batch(data.clone(), p_mask=0.0)[0]
            else:  # the same dynamics MLP with the adapter held at identity: no context at all
                loss = model.dynamics_loss(data, torch.zeros(n, model.adapter_shape.num_params))
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[name] = loss.item()
    assert final["dr_style"] > 0.5, "without context the flip averages out"
    assert final["dmash"] < 0.2 * final["dr_style"], final


def test_window_never_crosses_episodes_and_matches_the_shift():
    module = tiny_module("dmash")
    env = module.make_env("train", 2, seed=1)
    check_env_specs(env)
    horizon = env.base_env.horizon
    r = env.rollout(horizon + 6, break_when_any_done=False)
    k = module.context_cfg.history_len
    assert not r["history_mask"][:, 0].any(), "an episode starts with an empty window"
    assert not r["history_mask"][:, horizon].any(), "the window is emptied at the next episode"
    assert r["history_mask"][:, horizon + 2].sum(-1).tolist() == [2, 2]
    for t in (3, horizon - 1, horizon + 5):
        # Newest entry at t is transition t-1 (the past, never the future) ...
        entry = transition_entry(r["observation"][:, t - 1], r["action"][:, t - 1], r["next", "observation"][:, t - 1])
        torch.testing.assert_close(r["history"][:, t, -1], entry)
        # ... and shifting the window at t-1 by that transition gives the window at t.
        window, mask = shift_window(r["history"][:, t - 1], r["history_mask"][:, t - 1], entry)
        if t != horizon:
            torch.testing.assert_close(window, r["history"][:, t])
            assert torch.equal(mask, r["history_mask"][:, t])
    assert r["history"].shape[-2] == k


def test_masking_rate_matches_p_mask():
    mask = torch.ones(200_000, dtype=torch.bool)
    for p in (0.0, 0.2, 0.5):
        rate = 1 - drop_entries(mask, p).float().mean().item()
        assert rate == pytest.approx(p, abs=0.005)


def test_normalisers_update_in_training_only_and_are_saved():
    module = tiny_module("dmash")
    norm = module.context_model.normalizer
    before = norm.mean.clone()
    collected_batch(module)  # training path: update_normalizer
    assert not torch.equal(norm.mean, before)
    trained = (norm.count.clone(), norm.mean.clone(), norm.var.clone())
    module.evaluate("eval_out", episodes=3, seed=0)
    assert torch.equal(norm.count, trained[0]) and torch.equal(norm.mean, trained[1])
    assert torch.equal(norm.var, trained[2]), "evaluation must not move the normaliser"
    assert "context_model.normalizer.mean" in module.state_dict()


@pytest.mark.parametrize("method", sorted(m for m in METHODS if METHODS[m].infers_context))
def test_every_context_method_reads_only_inferred_context(method):
    module = tiny_module(method)
    assert "context" not in module.policy.in_keys
    assert "context" not in module.loss_module.qvalue_network.in_keys


def test_acting_never_masks_but_updates_do():
    module = tiny_module("dmash", p_mask=0.5, p_mask_feature=0.5)
    batch = collected_batch(module)
    context = module.context_model
    module.train()  # Lightning keeps the module in train mode while the collector acts
    acting = [context.embed(batch["history"], batch["history_mask"]) for _ in range(2)]
    assert torch.equal(acting[0], acting[1]), "acting sees the whole window, every time"
    _, z_unmasked = context.prepare_batch(batch.clone())
    _, z_masked = context.prepare_batch(batch.clone(), module.p_mask, module.p_mask_feature)
    assert torch.equal(z_unmasked, acting[0])
    assert not torch.equal(z_masked, acting[0]), "updates mask"


@pytest.mark.parametrize("method", ["dmash", "dma", "dmash_separate"])
def test_shared_entry_embedding_matches_embedding_both_windows(method):
    """The fast path (phi once over K+1 entries) gives the losses of the plain one to 1e-5."""
    module = tiny_module(method)
    batch = collected_batch(module)
    context = module.context_model
    fast = batch.clone()
    loss_fast, z_fast = context.prepare_batch(fast)
    entry = transition_entry(batch["observation"], batch["action"], batch["next", "observation"])
    next_window, next_mask = shift_window(batch["history"], batch["history_mask"], entry)
    z_plain = context.embed(batch["history"], batch["history_mask"])
    z_next_plain = context.embed(next_window, next_mask)
    torch.testing.assert_close(z_fast, z_plain, rtol=0, atol=1e-5)
    key = module.method.conditioning_key
    torch.testing.assert_close(fast["next", key], context.conditioning(z_next_plain).detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(
        loss_fast, context.dynamics_loss(batch, context.dynamics_condition(z_plain)), rtol=0, atol=1e-5
    )
