"""The experience layer directly, with real envs and agents at tiny sizes: the episodic replay
(`EpisodeReplay`), training collection (`Collector`) and evaluation (`run_episodes`)."""

from __future__ import annotations

import pytest
import torch
from conftest import nan_after, tiny_context
from torchrl.envs import TransformedEnv

from lit_dmash.agent.update import NonFiniteError
from lit_dmash.build import agent_spec, make_agent, make_collector, make_envs, make_replay
from lit_dmash.config import EnvConfig, ProtocolConfig, SACConfig
from lit_dmash.experience.replay import EpisodeReplay
from lit_dmash.experience.rollout import ContextWindow, EnvGroup, SeedEnvs, run_episodes

# --- EpisodeReplay, filled with known values --------------------------------------------------------
#
# Every transition carries its own address as its observation: seed, sub-env, episode and step t
# (t < 0: the K-transition prefix written at the episode's start). Its action is minus that code,
# its next observation the code + 0.5, its reward the code, and the episode's context its code at
# t = 0 - 50. A sampled window then says exactly where each of its slots came from.

K, H = 3, 5  # window, horizon


def code(seed: int, env: int, episode: int, t: int) -> float:
    return seed * 100_000 + env * 10_000 + episode * 100 + t + 50


def decode(value: float) -> tuple[int, int, int, int]:
    value = round(value)
    return value // 100_000, value // 10_000 % 10, value % 10_000 // 100, value % 100 - 50


def _codes(seeds: list[int], envs: int, episode: int, ts) -> torch.Tensor:
    """`[S, n, len(ts), 1]` codes; the seed digit is the seed's value, so batches can be compared."""
    return torch.tensor([[[[code(s, c, episode, t)] for t in ts] for c in range(envs)] for s in seeds])


def replay(seeds=(0, 1), envs: int = 2, capacity: int = 3) -> EpisodeReplay:
    return EpisodeReplay(list(seeds), envs, capacity, K, H, obs_dim=1, action_dim=1, context_dim=1)


def fill(buffer: EpisodeReplay, seeds, envs: int, episode: int, length: int = H, end: bool = True) -> None:
    """Episode `episode`: its prefix, then `length` transitions (then ended, unless `end` is False)."""
    prefix = _codes(seeds, envs, episode, range(-K, 0))
    buffer.start_episode((prefix, -prefix, prefix + 0.5), _codes(seeds, envs, episode, [0])[:, :, 0] - 50)
    for t in range(length):
        obs = _codes(seeds, envs, episode, [t])[:, :, 0]
        done = torch.full((len(seeds), envs), t == length - 1)
        buffer.add(
            obs=obs, action=-obs, next_obs=obs + 0.5, reward=obs[..., 0], terminated=torch.zeros_like(done), done=done
        )
    if end:
        buffer.end_episode()


def sampled(batch, seeds, envs: int, per_env: int, lengths: dict[int, int]) -> set[tuple[int, int]]:
    """Check every sampled window against the codes; return the (episode, t) pairs that were drawn."""
    drawn = set()
    windows = batch.obs.shape[2]
    assert batch.obs.shape == (len(seeds), envs * per_env, windows, 1)
    for i, seed in enumerate(seeds):
        for j in range(envs * per_env):
            slots = [decode(v) for v in batch.obs[i, j, :, 0].tolist()]
            s, c, episode, last = slots[-1]
            assert (s, c) == (seed, j // per_env), "each sub-env's samples come from that sub-env of that seed"
            assert 0 <= last < lengths[episode], "the sampled transition is a stored one of its episode"
            expected = [(s, c, episode, last - windows + 1 + k) for k in range(windows)]
            assert slots == expected, "consecutive transitions of one episode"
            torch.testing.assert_close(batch.action[i, j], -batch.obs[i, j])
            torch.testing.assert_close(batch.next_obs[i, j], batch.obs[i, j] + 0.5)
            assert batch.reward[i, j].item() == batch.obs[i, j, -1, 0].item()
            assert batch.done[i, j].item() == (last == lengths[episode] - 1)
            assert decode(batch.context[i, j, 0].item() + 50) == (s, c, episode, 0)
            drawn.add((episode, last))
    return drawn


def test_replay_samples_windows_of_consecutive_stored_transitions_of_one_episode():
    seeds, envs = [0, 1], 2
    buffer = replay(seeds, envs, capacity=4)
    fill(buffer, seeds, envs, episode=0)
    fill(buffer, seeds, envs, episode=1, length=2)  # a short episode: nothing past its end is sampled
    fill(buffer, seeds, envs, episode=2, length=2, end=False)  # in progress: never sampled
    drawn = set()
    for _ in range(20):
        drawn |= sampled(buffer.sample(per_env=6), seeds, envs, 6, lengths={0: H, 1: 2})
    assert drawn == {(0, t) for t in range(H)} | {(1, 0), (1, 1)}, "every stored transition can be drawn"


def test_replay_windows_false_is_the_sampled_transition_alone():
    seeds, envs = [0, 1], 2
    buffer = replay(seeds, envs)
    fill(buffer, seeds, envs, episode=0)
    batch = buffer.sample(per_env=5, windows=False)
    assert batch.obs.shape == (2, 10, 1, 1)
    sampled(batch, seeds, envs, 5, lengths={0: H})


def test_replay_draws_episodes_and_steps_uniformly():
    seeds, envs = [0], 1
    buffer = replay(seeds, envs, capacity=3)
    fill(buffer, seeds, envs, episode=0)
    fill(buffer, seeds, envs, episode=1)
    batch = buffer.sample(per_env=4000)
    codes = [decode(v)[2:] for v in batch.obs[0, :, -1, 0].tolist()]
    counts = torch.tensor([codes.count((e, t)) for e in range(2) for t in range(H)], dtype=torch.float)
    assert (counts - 400).abs().max() < 80, counts  # 4000 draws over 10 transitions


def test_replay_wraps_around_dropping_the_oldest_episode():
    seeds, envs = [0, 1], 2
    buffer = replay(seeds, envs, capacity=3)
    fill(buffer, seeds, envs, episode=0)
    fill(buffer, seeds, envs, episode=1, length=4)
    assert buffer.num_episodes == 2
    fill(buffer, seeds, envs, episode=2, length=2)
    # Full: the slot to be overwritten next (episode 0's) is no longer sampled.
    assert buffer.num_episodes == 2
    drawn = set()
    for _ in range(10):
        drawn |= sampled(buffer.sample(per_env=8), seeds, envs, 8, lengths={1: 4, 2: 2})
    assert {episode for episode, _ in drawn} == {1, 2}
    fill(buffer, seeds, envs, episode=3, length=1)  # overwrites episode 0's slot, shorter than it was
    fill(buffer, seeds, envs, episode=4, length=H, end=False)  # overwriting episode 1's slot
    drawn = set()
    for _ in range(10):
        drawn |= sampled(buffer.sample(per_env=8), seeds, envs, 8, lengths={2: 2, 3: 1})
    assert drawn == {(2, 0), (2, 1), (3, 0)}, "neither stale steps of the old episode nor the one being written"


def test_replay_refuses_sampling_empty_overlong_episodes_and_tiny_capacity():
    buffer = replay([0], 1)
    fill(buffer, [0], 1, episode=0, end=False)
    with pytest.raises(RuntimeError, match="no complete episode"):
        buffer.sample(per_env=2)
    with pytest.raises(RuntimeError, match="longer than the horizon"):
        buffer.add(obs=torch.zeros(1, 1, 1))
    with pytest.raises(ValueError, match="at least 2 episodes"):
        replay([0], 1, capacity=1)


def test_replay_seed_in_a_batch_samples_as_the_seed_alone():
    alone, batched = replay([7], 2), replay([3, 7], 2)
    for buffer, seeds in ((alone, [7]), (batched, [3, 7])):
        for episode in range(4):
            fill(buffer, seeds, 2, episode=episode, length=H - episode % 2)
    for _ in range(3):
        one, two = alone.sample(per_env=4), batched.sample(per_env=4)
        for name in ("obs", "action", "next_obs", "reward", "done", "context"):
            assert torch.equal(getattr(two, name)[1], getattr(one, name)[0]), name
        assert not torch.equal(two.obs[0] - 300_000, two.obs[1] - 700_000), "the two seeds draw differently"


def test_replay_state_dict_round_trip_samples_the_same():
    seeds, envs = [0, 1], 2
    buffer = replay(seeds, envs, capacity=3)
    for episode in range(4):
        fill(buffer, seeds, envs, episode=episode, length=H - episode % 2)
    restored = replay(seeds, envs, capacity=3)
    restored.load_state_dict(buffer.state_dict())
    first, second = buffer.sample(per_env=5), restored.sample(per_env=5)
    for name in ("obs", "action", "next_obs", "reward", "done", "context"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name


# --- Collector and run_episodes on real envs ----------------------------------------------------------


def build(task="ode", method="dmash", seeds=(0, 1), random_steps=4, warm_up=True, num_envs=2, horizon=3, envs=None):
    """Real envs, agent, replay and collector as `lit_dmash.build` makes them (window 3)."""
    env = EnvConfig(name=task, num_envs=num_envs, contexts_per_split=2, horizon=horizon)
    envs = make_envs(env, "train", seeds) if envs is None else envs
    spec = agent_spec(method, task, envs, SACConfig(hidden_dims=[8, 8], batch_size=8), tiny_context(method))
    agent = make_agent(spec, envs, seeds)
    protocol = ProtocolConfig(random_steps=random_steps, total_steps=30, buffer_size=60, warm_up=warm_up)
    return envs, agent, make_collector(agent, envs, make_replay(agent, envs, protocol), protocol)


def record(envs: SeedEnvs) -> list[tuple[torch.Tensor, object]]:
    """Every `(action, result)` the envs step from now on, in order."""
    steps = []
    step = envs.step

    def recording(action):
        result = step(action)
        steps.append((action.clone(), result))
        return result

    envs.step = recording
    return steps


def test_random_phase_actions_are_uniform_in_bounds_and_ignore_the_agent():
    runs = []
    for perturb in (False, True):
        envs, agent, collector = build(random_steps=6, horizon=4)
        if perturb:
            with torch.no_grad():
                for p in agent.parameters():
                    p.add_(0.5)
        steps = record(envs)
        assert not collector.learning
        for _ in range(7):
            collector.step()
        assert collector.learning
        runs.append(torch.stack([action for action, _ in steps]))  # [steps, S, n, d_a]
    random, perturbed = runs[0][:6], runs[1][:6]
    assert torch.equal(random, perturbed), "the random phase does not depend on the agent"
    assert not torch.equal(runs[0][6], runs[1][6]), "after it the agent acts"
    low, high = envs.action_low, envs.action_high
    assert random.min() >= low and random.max() <= high
    assert random.min() < low + 0.2 * (high - low) and random.max() > high - 0.2 * (high - low)
    assert not torch.equal(random[:, 0], random[:, 1]) and not torch.equal(random[:, :, 0], random[:, :, 1])


def test_collector_counts_scored_steps_only_and_warms_up_between_learning_episodes():
    for warm_up in (True, False):
        envs, agent, collector = build(random_steps=4, horizon=3, warm_up=warm_up)
        steps = record(envs)
        for _ in range(12):
            collector.step()
        assert collector.vector_steps == 12 and collector.frames == 12 * envs.num_envs
        assert collector.episodes == 4 and collector.replay.complete == 4  # capacity 30 // 3 = 10
        # Episodes end at steps 3 (random phase), 6, 9 and 12; a warm-up of K unscored steps precedes
        # the episodes after 6 and 9 (the one after 12 has not started yet).
        assert len(steps) == 12 + (2 * agent.spec.window if warm_up else 0), warm_up


def test_collector_stores_what_the_envs_returned_and_the_mean_returns():
    envs, agent, collector = build(random_steps=20, horizon=3)
    steps = record(envs)
    for _ in range(7):
        collector.step()
    data, k = collector.replay.data, agent.spec.window
    for i, (action, result) in enumerate(steps):
        episode, t = divmod(i, 3)
        at = (slice(None), slice(None), episode, k + t)
        assert torch.equal(data["action"][at], action)
        assert torch.equal(data["next_obs"][at], result.next_obs)
        assert torch.equal(data["reward"][at], result.reward)
        assert torch.equal(data["done"][at], result.done) and bool(result.done.all()) == (t == 2)
        if t:
            assert torch.equal(data["obs"][at], steps[i - 1][1].next_obs), "obs is the previous next_obs"
        assert torch.equal(data["context"][:, :, episode], result.context)
    assert collector.replay.lengths[:2].tolist() == [3, 3] and collector.replay.position == k + 1
    rewards = torch.stack([result.reward for _, result in steps[:6]])  # [6, S, n]
    expected = torch.stack([rewards[:3].sum(0), rewards[3:].sum(0)]).mean(-1).mean(0)  # per seed
    torch.testing.assert_close(collector.pop_finished_returns(), expected)
    assert collector.pop_finished_returns() is None


def test_episode_prefixes_are_the_window_before_the_episode():
    envs, agent, collector = build(random_steps=4, horizon=3)
    first_obs = collector.obs.clone()
    steps = record(envs)
    for _ in range(7):  # episodes 0 (random) and 1 (learning, after its warm-up), and one step of 2
        collector.step()
    data, k = collector.replay.data, agent.spec.window
    # Episode 0: K copies of (reset obs, 0, reset obs), as the authors' initial window.
    assert torch.equal(data["obs"][:, :, 0, :k], first_obs.unsqueeze(2).expand(-1, -1, k, -1))
    assert torch.equal(data["next_obs"][:, :, 0, :k], data["obs"][:, :, 0, :k])
    assert not data["action"][:, :, 0, :k].any()
    assert torch.equal(data["obs"][:, :, 0, k], first_obs)
    # Episode 1 starts in the random phase: its prefix carries over the window, episode 0's last K
    # transitions (3 = K here: the whole episode).
    for name in ("obs", "action", "next_obs"):
        assert torch.equal(data[name][:, :, 1, :k], data[name][:, :, 0, k : k + 3]), name
    # Episode 2 starts after learning began: its prefix is the warm-up's K steps, which are not
    # stored as transitions, and a reset separates it from the episode.
    warm = steps[6 : 6 + k]
    assert len(steps) == 7 + k
    assert torch.equal(data["action"][:, :, 2, :k], torch.stack([a for a, _ in warm], dim=2))
    assert torch.equal(data["next_obs"][:, :, 2, :k], torch.stack([r.next_obs for _, r in warm], dim=2))
    assert torch.equal(data["obs"][:, :, 2, 1:k], data["next_obs"][:, :, 2, : k - 1])
    assert not torch.equal(data["obs"][:, :, 2, k], data["next_obs"][:, :, 2, k - 1])


def test_collector_stores_nothing_non_finite_and_recovers():
    env = EnvConfig(name="di", num_envs=2, contexts_per_split=2, horizon=6)
    clean = make_envs(env, "train", [0]).envs
    poisoned = SeedEnvs([TransformedEnv(e, nan_after("observation", steps=4)) for e in clean])
    _, agent, collector = build(task="di", seeds=(0,), horizon=6, envs=poisoned)
    for _ in range(4):
        collector.step()
    replay, before = collector.replay, {k: v.clone() for k, v in collector.replay.data.items()}
    with pytest.raises(NonFiniteError, match="non-finite observation or reward at vector step 4"):
        collector.step()
    assert collector.poisoned and collector.vector_steps == 4 and replay.position == agent.spec.window + 4
    assert all(torch.equal(before[k], v) for k, v in replay.data.items()), "nothing of the bad step is stored"
    assert all(v.isfinite().all() for v in replay.data.values() if v.is_floating_point())
    collector.recover()
    assert not collector.poisoned and collector.vector_steps == 5, "the dropped step counts against the budget"
    assert replay.complete == 1 and replay.lengths[0].item() == 4, "the good steps are kept as an episode"
    assert not collector.returns.any()


def test_run_episodes_returns_one_return_per_context_and_episode():
    envs, agent, _ = build(task="ode", seeds=(0, 1), num_envs=4, horizon=5)
    out = run_episodes(agent, envs, agent.spec.window, episodes=3)
    assert out["returns"].shape == (2, 4, 3)
    expected = torch.stack([env.contexts[torch.arange(4) % 2].float() for env in envs.envs])
    assert torch.equal(out["contexts"], expected), "sub-env i is in context i mod contexts_per_split"
    again = run_episodes(agent, build(task="ode", seeds=(0, 1), num_envs=4, horizon=5)[0], agent.spec.window, 3)
    assert torch.equal(out["returns"], again["returns"]), "deterministic actions on fresh envs: the same returns"


@pytest.mark.parametrize("warm", [True, False])
def test_run_episodes_return_is_the_sum_of_rewards_stepping_by_hand(warm):
    envs, agent, _ = build(task="ode", seeds=(0, 1), horizon=5)
    steps = record(envs)
    out = run_episodes(agent, envs, agent.spec.window, episodes=2, warm=warm)
    k = agent.spec.window if warm else 0
    assert len(steps) == 2 * (k + 5), "per episode: the warm-up, then exactly one horizon of scored steps"
    # The same actions on fresh envs, stepped by hand as documented: a reset, the warm-up (a reset and
    # K steps), a reset, the scored episode.
    fresh = build(task="ode", seeds=(0, 1), horizon=5)[0]
    actions = iter(action for action, _ in steps)
    for episode in range(2):
        fresh.reset()
        if warm:
            fresh.reset()
        for _ in range(k):
            fresh.step(next(actions))
        obs, _ = fresh.reset()
        total = torch.zeros(obs.shape[:2])
        for _ in range(5):
            total += fresh.step(next(actions)).reward
        assert torch.equal(out["returns"][..., episode], total), episode
    assert out["returns"].abs().sum() > 0, "a test of sums needs rewards that are not all zero"


def test_run_episodes_acts_on_the_window_of_the_episode():
    """The window passed to the agent at each scored step is the K transitions before it (after the
    warm-up), so the same agent acting on a window built by hand chooses the same actions."""
    envs, agent, _ = build(task="ode", seeds=(0,), horizon=4)
    steps = record(envs)
    run_episodes(agent, envs, agent.spec.window, episodes=1)
    k = agent.spec.window
    fresh = build(task="ode", seeds=(0,), horizon=4)[0]
    window = ContextWindow(k, fresh.reset()[0], fresh.action_dim)
    obs, context = fresh.reset()  # the warm-up's own reset
    for action, _ in steps[:k]:
        result = fresh.step(action)
        window.push(obs, action, result.next_obs)
        obs = result.next_obs
    obs, context = fresh.reset()
    for action, _ in steps[k:]:
        expected = agent.act(obs, window=window.tensors, context=context, deterministic=True)
        torch.testing.assert_close(action, expected)
        result = fresh.step(action)
        window.push(obs, action, result.next_obs)
        obs, context = result.next_obs, result.context


def _split_envs(task: str, split: str, seeds=(0, 1), horizon: int = 5, terminate_after: int | None = None) -> SeedEnvs:
    env = EnvConfig(name=task, num_envs=2, contexts_per_split=2, horizon=horizon)
    envs = make_envs(env, split, seeds)
    if terminate_after is not None:
        envs = SeedEnvs([TransformedEnv(e, terminates_after(terminate_after)) for e in envs.envs])
    return envs


def test_splits_evaluated_as_one_group_score_what_each_scores_alone():
    """`EnvGroup` (one policy pass per step for every split) changes no split's returns: each
    part keeps its envs' start states, and the policy is row-wise, bit for bit."""
    splits = ["train", "eval_in", "eval_out"]
    agent = build(task="ode", horizon=5)[1]
    with torch.no_grad():  # actions away from an untrained policy's near-zero ones
        for p in agent.actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    alone = [run_episodes(agent, _split_envs("ode", split), agent.spec.window, episodes=2) for split in splits]
    group = EnvGroup([_split_envs("ode", split) for split in splits])
    together = run_episodes(agent, group, agent.spec.window, episodes=2)
    for key in ("returns", "contexts"):
        for part, own in zip(group.split_rows(together[key]), alone, strict=True):
            assert torch.equal(part, own[key]), key
    assert together["returns"].abs().sum() > 0, "a comparison of returns needs rewards that are not all zero"


def test_a_split_whose_episode_ends_early_stops_while_the_others_go_on():
    """A part whose sub-env terminates ends its scored episode there, as alone (one more step
    would move its envs' state); the other parts play their whole horizon."""
    agent = build(task="ode", horizon=6)[1]
    alone_short = run_episodes(agent, _split_envs("ode", "train", horizon=6, terminate_after=2), agent.spec.window, 2)
    alone_full = run_episodes(agent, _split_envs("ode", "eval_out", horizon=6), agent.spec.window, 2)
    short, full = _split_envs("ode", "train", horizon=6, terminate_after=2), _split_envs("ode", "eval_out", horizon=6)
    short_steps, full_steps = record(short), record(full)
    together = run_episodes(agent, EnvGroup([short, full]), agent.spec.window, 2)
    k = agent.spec.window
    assert len(short_steps) == 2 * (k + 2) and len(full_steps) == 2 * (k + 6)
    assert torch.equal(together["returns"][:, :2], alone_short["returns"])
    assert torch.equal(together["returns"][:, 2:], alone_full["returns"])


def test_an_env_group_refuses_parts_of_different_shapes():
    with pytest.raises(ValueError, match="parts differ in horizon"):
        EnvGroup([_split_envs("ode", "train", horizon=5), _split_envs("ode", "train", horizon=6)])


def terminates_after(steps: int):
    """A real TorchRL transform that terminates every sub-env `steps` steps after each reset."""
    from torchrl.envs import Transform

    class TerminatesAfter(Transform):
        def __init__(self) -> None:
            super().__init__(in_keys=[], out_keys=[])
            self.count = 0

        def _reset(self, tensordict, tensordict_reset):
            self.count = 0
            return tensordict_reset

        def _step(self, tensordict, next_tensordict):
            self.count += 1
            if self.count >= steps:
                for key in ("terminated", "done"):
                    next_tensordict.set(key, torch.ones_like(next_tensordict[key]))
            return next_tensordict

    return TerminatesAfter()
