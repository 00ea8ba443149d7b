"""The agent's update against its definition: gradient routing per arm, the shared adapter's reach,
the TD target and log-probability formulas, and seeds that do not see each other."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from conftest import FLOAT_ROUNDING

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.spec import resolve
from lit_dmash.agent.update import Batch, actor_loss, critic_loss, dynamics_loss, update
from lit_dmash.build import make_optimizers
from lit_dmash.config import ContextConfig, SACConfig
from lit_dmash.methods import METHODS, get_method

OBS, ACT, CTX, K = 4, 2, 2, 6


def make_agent(method: str, seeds=(0,), **sac) -> Agent:
    spec = resolve(
        get_method(method), OBS, ACT, CTX, K, SACConfig(hidden_dims=[16, 16], **sac), ContextConfig(hypernet_hidden=[8])
    )
    return Agent(spec, list(seeds))


def make_batch(seeds: int = 1, batch: int = 12, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(seeds, batch, K + 1, OBS, generator=g)
    return Batch(
        obs=obs,
        action=torch.rand(seeds, batch, K + 1, ACT, generator=g) * 2 - 1,
        next_obs=obs + 0.1 * torch.randn(seeds, batch, K + 1, OBS, generator=g),
        reward=torch.randn(seeds, batch, generator=g),
        terminated=torch.zeros(seeds, batch, dtype=torch.bool),
        done=torch.rand(seeds, batch, generator=g) < 0.3,
        context=torch.randn(seeds, batch, CTX, generator=g),
    )


def moved(module: torch.nn.Module | None) -> bool:
    """Some parameter of `module` received a non-zero gradient."""
    if module is None:
        return False
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def shared_hypernet(agent: Agent) -> torch.nn.Module | None:
    return agent.dynamics.trunk.hypernet if agent.dynamics is not None else None


def backward_of(agent: Agent, which: str) -> None:
    agent.zero_grad(set_to_none=True)
    batch = make_batch()
    loss = {"dynamics": dynamics_loss, "critic": critic_loss, "actor": actor_loss}[which](agent, batch)[0]
    loss.backward()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_gradient_routing(method):
    agent = make_agent(method)
    spec = agent.spec.method
    if agent.dynamics is not None:
        backward_of(agent, "dynamics")
        assert moved(agent.encoder) and moved(agent.dynamics)
        assert not moved(agent.actor) and not moved(agent.critic)
        if spec.dynamics == "adapter":
            assert moved(shared_hypernet(agent))
    for loss, owner in (("critic", agent.critic), ("actor", agent.actor)):
        backward_of(agent, loss)
        assert moved(owner)
        other = agent.actor if loss == "critic" else agent.critic
        assert not moved(other)  # the actor is not trained by the critic loss, nor the critics by the actor's
        reaches = loss in spec.rl_grad
        assert moved(agent.encoder) == reaches
        assert moved(shared_hypernet(agent)) == (reaches and spec.shares_adapter)
        if spec.policy == "own_adapter":
            assert moved(owner.trunk.hypernet)  # DA / DMA*-H: each network's own hypernetwork, by its own loss
        assert not moved(agent.target_critic)


def test_shared_adapter_reaches_actor_critics_and_targets():
    agent = make_agent("dmash")
    generated, received = [], {}
    agent.dynamics.trunk.hypernet.register_forward_hook(lambda m, i, out: generated.append(out))
    for name in ("actor", "critic", "target_critic"):
        getattr(agent, name).trunk.register_forward_pre_hook(
            lambda m, args, name=name: received.setdefault(name, []).append(args[1])
        )
    critic_loss(agent, make_batch())
    assert len(generated) == 1
    for name in ("actor", "critic", "target_critic"):  # actor: the next action of the TD target
        assert all(torch.equal(a, generated[0]) for a in received[name])
        assert not any(a.requires_grad for a in received[name])


@pytest.mark.parametrize("bootstrap_timeouts", [False, True])
def test_td_target_and_critic_loss_follow_the_formula(bootstrap_timeouts):
    agent = make_agent("dr", gamma=0.9, bootstrap_timeouts=bootstrap_timeouts)
    batch = make_batch()
    batch.terminated[:, :4] = True  # some real terminations among the time-outs
    batch.done |= batch.terminated
    draws = []
    original = agent.sample
    agent.sample = lambda *a, **k: draws.append(original(*a, **k)) or draws[-1]
    loss = critic_loss(agent, batch)[0]
    next_action, next_log_prob = draws[0]
    obs, action, next_obs = batch.transition()
    with torch.no_grad():
        next_q = agent.target_critic(next_obs, next_action).min(dim=1).values
        ends = batch.terminated if bootstrap_timeouts else batch.done
        target = batch.reward + 0.9 * (1 - ends.float()) * (next_q - agent.alpha[:, None] * next_log_prob)
    q = agent.critic(obs, action)
    expected = ((q[:, 0] - target) ** 2).mean() + ((q[:, 1] - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("bootstrap_timeouts", [False, True])
def test_bootstrap_timeouts_switch_on_time_outs_only(bootstrap_timeouts):
    """Every sampled transition ends its episode by time-out: the authors' target is the reward alone
    (the target critics are never read); the switch bootstraps through the time-outs."""
    agent = make_agent("dr", gamma=0.9, bootstrap_timeouts=bootstrap_timeouts)
    batch = make_batch()
    batch.done[:], batch.terminated[:] = True, False
    draws = []
    original = agent.sample
    agent.sample = lambda *a, **k: draws.append(original(*a, **k)) or draws[-1]
    with torch.no_grad():
        agent.target_critic.head.bias.fill_(5.0)  # a target of r alone cannot see this
    loss = critic_loss(agent, batch)[0]
    obs, action, next_obs = batch.transition()
    target = batch.reward.clone()
    if bootstrap_timeouts:
        next_action, next_log_prob = draws[0]
        with torch.no_grad():
            next_q = agent.target_critic(next_obs, next_action).min(dim=1).values
        target += 0.9 * (next_q - agent.alpha[:, None] * next_log_prob)
    q = agent.critic(obs, action)
    torch.testing.assert_close(loss, ((q[:, 0] - target) ** 2).mean() + ((q[:, 1] - target) ** 2).mean())


def test_log_prob_is_the_authors_formula():
    agent = make_agent("dr")
    mean, log_std = torch.randn(1, 50, ACT), torch.rand(1, 50, ACT) * -2
    state = copy.deepcopy(agent.rng.state_dict())
    action, log_prob = agent.sample(mean, log_std)
    agent.rng.load_state_dict(state)
    x = mean + log_std.exp() * agent.rng.normal(mean.shape[1:])
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(x) - torch.log(1 - torch.tanh(x) ** 2 + 1e-6)
    torch.testing.assert_close(action, torch.tanh(x))
    torch.testing.assert_close(log_prob, expected.sum(-1))
    deterministic, _ = agent.sample(mean, log_std, deterministic=True)
    torch.testing.assert_close(deterministic, torch.tanh(mean))


def test_actor_log_std_is_rescaled_tanh_between_minus_5_and_2():
    agent = make_agent("dr")
    with torch.no_grad():
        agent.actor.log_std.bias.fill_(100.0)
    assert agent.actor(torch.randn(1, 3, OBS))[1].max().item() == pytest.approx(2.0)
    with torch.no_grad():
        agent.actor.log_std.bias.fill_(-100.0)
    assert agent.actor(torch.randn(1, 3, OBS))[1].min().item() == pytest.approx(-5.0)


def test_actor_and_alpha_update_twice_every_second_step():
    agent = make_agent("dr", actor_every=2)
    optimizers = make_optimizers(agent)
    counts = {"actor": 0, "alpha": 0}
    for name in counts:
        opt = getattr(optimizers, name)
        opt.register_step_post_hook(lambda *a, name=name: counts.__setitem__(name, counts[name] + 1))
    for t in range(4):
        update(agent, make_batch(seed=t), optimizers, t)
    assert counts == {"actor": 4, "alpha": 4}  # t = 0 and t = 2, twice each


def test_alpha_starts_at_one_and_targets_start_equal():
    agent = make_agent("dmash")
    assert agent.alpha.item() == pytest.approx(1.0)
    for p, q in zip(agent.critic.parameters(), agent.target_critic.parameters(), strict=True):
        assert torch.equal(p, q)
    assert agent.target_entropy == -ACT


# Bit for bit, except DA: its networks' own hypernetworks read the true context through a product
# whose rounding depends on the stack (differences ~1e-10 after a few updates).
SEED_TOLERANCE = {"da": FLOAT_ROUNDING}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_seed_in_a_stack_equals_the_seed_alone(method):
    alone, stack = make_agent(method, seeds=[7]), make_agent(method, seeds=[3, 7])
    for (name, p), q in zip(alone.state_dict().items(), stack.state_dict().values(), strict=True):
        if p.dim() > 0 and q.shape[0] == 2 and "counter" not in name:
            torch.testing.assert_close(p[0], q[1], rtol=0, atol=0, msg=name)
    opt_a, opt_s = make_optimizers(alone), make_optimizers(stack)
    for t in range(3):
        single, double = make_batch(1, seed=t), make_batch(2, seed=10 + t)
        for field in ("obs", "action", "next_obs", "reward", "terminated", "done", "context"):
            getattr(double, field)[1] = getattr(single, field)[0]
        update(alone, single, opt_a, t)
        update(stack, double, opt_s, t)
    tolerance = SEED_TOLERANCE.get(method, {"rtol": 0, "atol": 0})
    for p, q in zip(alone.parameters(), stack.parameters(), strict=True):
        torch.testing.assert_close(p[0], q[1], **tolerance)


def test_update_changes_every_trained_part_of_dmash():
    agent = make_agent("dmash")
    before = copy.deepcopy(agent.state_dict())
    update(agent, make_batch(), make_optimizers(agent), 0)
    after = agent.state_dict()
    changed = {
        k.split(".")[0] for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])
    }
    assert {"encoder", "dynamics", "actor", "critic", "target_critic", "log_alpha"} <= changed
    assert math.isfinite(agent.alpha.item())


def test_running_input_norm_option_tracks_collected_transitions(tmp_path):
    from conftest import quiet_trainer, tiny_module

    module = tiny_module("dmash", total_steps=2, context={"input_norm": "running"})
    quiet_trainer(tmp_path).fit(module)
    norm = module.agent.normalizer
    assert norm is not None
    assert norm.count.min().item() == module.env_frames  # every collected transition of the seed


@pytest.mark.integration
def test_compiled_critic_loss_equals_the_eager_one():
    """`protocol.compile`: the critic's loss only. Each loss compiles separately (`Losses.compiled`);
    the dynamics, actor and alpha losses cost 30-60 s each to compile on 2 cores, so they are not
    checked here."""
    from lit_dmash.agent.update import EAGER, Losses

    compiled = Losses.compiled("default")
    agent, batch = make_agent("dmash"), make_batch()
    state = copy.deepcopy(agent.rng.state_dict())
    eager = EAGER.critic(agent, batch)[0]
    agent.rng.load_state_dict(state)  # the same random draws (they are counter-based)
    torch.testing.assert_close(compiled.critic(agent, batch)[0], eager, rtol=1e-4, atol=1e-5)


def _poisoned(loss_fn):
    """The real loss, times NaN: what a blown-up network would hand back."""

    def poisoned(*args):
        out = loss_fn(*args)
        if isinstance(out, tuple):
            return (out[0] * float("nan"), *out[1:])
        return out * float("nan")

    return poisoned


def _snapshot(agent: Agent, optimizers) -> tuple[dict, list]:
    params = {k: v.detach().clone() for k, v in agent.state_dict().items()}
    states = [copy.deepcopy(o.state_dict()["state"]) for o in optimizers.as_list()]
    return params, states


@pytest.mark.parametrize("poisoned", ["dynamics", "critic", "actor", "alpha"])
@pytest.mark.parametrize("earlier_updates", [0, 2])
def test_a_nonfinite_loss_leaves_the_run_untouched(poisoned, earlier_updates):
    """Whichever loss of an update is non-finite, every parameter, optimiser state and the agent's random
    stream are as they were before the update (earlier steps of that update rolled back)."""
    from lit_dmash.agent.rollback import Rollback
    from lit_dmash.agent.update import EAGER, Losses, NonFiniteError

    agent = make_agent("dmash")
    optimizers = make_optimizers(agent)
    rollback = Rollback(agent, optimizers.as_list())
    for t in range(earlier_updates):  # optimiser states exist (or not, for the first update)
        update(agent, make_batch(seed=t), optimizers, t, rollback=rollback)
    before = _snapshot(agent, optimizers)
    losses = Losses(**{poisoned: _poisoned(getattr(EAGER, poisoned))})
    with pytest.raises(NonFiniteError, match=f"loss_{poisoned}"):
        update(agent, make_batch(seed=9), optimizers, 0, losses=losses, rollback=rollback)
    params, states = _snapshot(agent, optimizers)
    for key, value in before[0].items():
        assert torch.equal(params[key], value), key
    assert len(states) == len(before[1])
    for now, then in zip(states, before[1], strict=True):
        assert now.keys() == then.keys() or not then  # states first created by this update are gone
        for index, entry in then.items():
            for name, value in entry.items():
                assert torch.equal(now[index][name], value), (index, name)
    # and the next good update runs as if the bad one never happened
    update(agent, make_batch(seed=10), optimizers, 1, rollback=rollback)


def test_rollback_keeps_up_with_optimiser_states_created_undone_and_loaded():
    """`Rollback` keeps its list of state tensors between updates; each bad update below must still
    find every state as it was: after states an undone update had created come back at the next
    good one, and after the optimisers load a state dict (what resuming a run does)."""
    from lit_dmash.agent.rollback import Rollback
    from lit_dmash.agent.update import EAGER, Losses, NonFiniteError

    agent = make_agent("dmash")
    optimizers = make_optimizers(agent)
    rollback = Rollback(agent, optimizers.as_list())

    def bad_update(poisoned: str, step: int) -> None:
        before = _snapshot(agent, optimizers)
        losses = Losses(**{poisoned: _poisoned(getattr(EAGER, poisoned))})
        with pytest.raises(NonFiniteError):
            update(agent, make_batch(seed=20 + step), optimizers, step, losses=losses, rollback=rollback)
        params, states = _snapshot(agent, optimizers)
        for key, value in before[0].items():
            assert torch.equal(params[key], value), (poisoned, step, key)
        for now, then in zip(states, before[1], strict=True):
            assert now.keys() == then.keys(), (poisoned, step)
            for index, entry in then.items():
                for name, value in entry.items():
                    assert torch.equal(now[index][name], value), (poisoned, step, index, name)

    bad_update("alpha", 0)  # dynamics, critic and actor states created, then undone
    update(agent, make_batch(seed=1), optimizers, 1, rollback=rollback)  # dynamics and critic states back
    bad_update("critic", 1)
    for opt in (optimizers.actor, optimizers.alpha):  # a mere read leaves empty entries, filled in place
        for group in opt.param_groups:
            for p in group["params"]:
                assert not opt.state[p]
    update(agent, make_batch(seed=2), optimizers, 2, rollback=rollback)  # every state exists now
    bad_update("actor", 2)
    update(agent, make_batch(seed=3), optimizers, 3, rollback=rollback)
    for opt in optimizers.as_list():  # a resumed run: new state tensors, equal values
        opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    update(agent, make_batch(seed=4), optimizers, 4, rollback=rollback)  # moves only the new tensors
    bad_update("critic", 5)


CHANGED_CONTEXT = {  # a value away from the default for every context field but `window`
    "leak_free": True,
    "select_fraction": 0.5,
    "z_dim": 4,
    "model_dim": 16,
    "encoder": "meanpool",
    "input_norm": "running",
    "output_norm": "l2",
    "p_mask": 0.1,
    "kl_weight": 0.1,
    "adapter": "lowrank",
    "adapter_rank": 3,
    "hypernet_hidden": [4],
    "lr_encoder": 1e-2,
    "lr_dynamics": 1e-2,
}


def _after_one_update(method: str, context: ContextConfig) -> dict[str, torch.Tensor]:
    spec = resolve(get_method(method), OBS, ACT, CTX, K, SACConfig(hidden_dims=[16, 16]), context)
    agent = Agent(spec, [0])
    update(agent, make_batch(), make_optimizers(agent), 0)
    return agent.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_context_options_refused_as_inert_change_nothing_and_the_others_do(method):
    """The refusal of `context.*` options per arm (`inert_context_fields`) is right both ways: an option
    it calls inert leaves the agent and its update unchanged; every other option changes them."""
    from lit_dmash.config import inert_context_fields

    base = ContextConfig(hypernet_hidden=[8])
    reference = _after_one_update(method, base)
    for name, value in CHANGED_CONTEXT.items():
        changed = dataclasses.replace(base, **{name: value})
        inert = name in inert_context_fields(get_method(method), changed)
        assert _same(_after_one_update(method, changed), reference) == inert, (name, inert)


@pytest.mark.parametrize("adapter", ["scale_shift", "full"])
def test_adapter_rank_is_inert_for_adapters_without_a_rank(adapter):
    from lit_dmash.config import inert_context_fields

    base = ContextConfig(hypernet_hidden=[8], adapter=adapter)
    ranked = dataclasses.replace(base, adapter_rank=3)
    assert "adapter_rank" in inert_context_fields(get_method("dmash"), ranked)
    assert _same(_after_one_update("dmash", ranked), _after_one_update("dmash", base))


@pytest.mark.parametrize("leak_free", [False, True])
def test_every_encoder_pass_of_an_update_reads_the_window_leak_free_picks(leak_free):
    """Slots 1..K of a sampled window (the authors': it ends with the transition learnt from) or, with
    `context.leak_free`, slots 0..K-1 (the K transitions before it), in every encoder pass."""
    spec = resolve(
        get_method("dmash"), OBS, ACT, CTX, K, SACConfig(hidden_dims=[16, 16]), ContextConfig(leak_free=leak_free)
    )
    agent, batch = Agent(spec, [0]), make_batch()
    read = []
    agent.encoder.register_forward_pre_hook(lambda module, args: read.append(args[:3]))
    update(agent, batch, make_optimizers(agent), 0)
    part = slice(0, K) if leak_free else slice(1, K + 1)
    assert len(read) == 4  # dynamics, critic, actor twice (t = 0)
    for window in read:
        for got, full in zip(window, (batch.obs, batch.action, batch.next_obs), strict=True):
            assert torch.equal(got, full[..., part, :])


def test_the_leak_free_training_window_is_the_window_the_agent_acted_with():
    """Through a real collector and replay: for a sampled transition, slots 0..K-1 (`leak_free`) are the
    context window at the moment its action was chosen; slots 1..K are that window pushed with it."""
    from conftest import tiny_module

    from lit_dmash.experience.collector import Collector
    from lit_dmash.experience.replay import EpisodeReplay

    module = tiny_module("dmash")
    envs = module.make_envs("train")
    window = module.spec.window
    dims = (envs.obs_dim, envs.action_dim, envs.context_dim)
    replay = EpisodeReplay(module.seeds, envs.num_envs, 8, window, module.horizon, *dims)
    collector = Collector(module.agent, envs, replay, window, random_steps=6, warm_up=False)
    acted_with = {}
    for _ in range(30):  # random actions, then the agent's (its encoder reads the window)
        obs, before = collector.obs.clone(), [t.clone() for t in collector.window.tensors]
        collector.step()
        for c in range(envs.num_envs):
            acted_with[tuple(obs[0, c].tolist())] = [t[0, c] for t in before]
    batch = replay.sample(per_env=10)
    obs, action, next_obs = batch.transition()
    for b in range(obs.shape[1]):
        before = acted_with[tuple(obs[0, b].tolist())]
        for got, expected in zip(batch.window(leak_free=True), before, strict=True):
            assert torch.equal(got[0, b], expected)
        authors = batch.window(leak_free=False)
        for got, expected, last in zip(authors, before, (obs, action, next_obs), strict=True):
            assert torch.equal(got[0, b, :-1], expected[1:]) and torch.equal(got[0, b, -1], last[0, b])
