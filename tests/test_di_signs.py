"""DI-Signs (`di_signs`, our extension): specs, inversion physics, per-episode contexts, partial auto-reset."""

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from lit_dmash.envs import make_env
from lit_dmash.errors import ConfigError


@pytest.mark.parametrize("num_envs", [1, 8])
def test_check_env_specs(num_envs):
    check_env_specs(make_env("di_signs", num_envs=num_envs))


@pytest.mark.parametrize("split", ["train", "eval_in", "eval_out", "eval_pattern"])
def test_every_tensordict_carries_observation_and_context(split):
    env = make_env("di_signs", split, num_envs=3)
    rollout = env.rollout(5)
    for td in (rollout, rollout["next"]):
        assert td["observation"].shape == (3, 5, 4)
        assert td["context"].shape == (3, 5, 3)


def test_inverted_axis_accelerates_the_other_way():
    env = make_env("di_signs", num_envs=2, seed=0)
    td = env.reset()
    # Same start state, same action; sub-env 1 has axis 0 inverted, axis 1 not.
    env._pos[:] = torch.tensor([0.3, -0.2])
    env._vel[:] = torch.tensor([0.1, 0.1])
    env._context[:] = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])
    td["action"] = torch.tensor([[0.8, 0.5], [0.8, 0.5]])
    next_td = env.step(td)["next"]
    dv = next_td["observation"][:, 2:] - torch.tensor([0.1, 0.1])
    assert dv[0, 0] > 0 and dv[1, 0] < 0, "axis 0: opposite velocity change under s=-1"
    assert torch.allclose(dv[0, 1], dv[1, 1]), "axis 1 is not inverted in either sub-env"


def test_fresh_context_at_every_episode_start():
    env = make_env("di_signs", num_envs=4, seed=1)
    rollout = env.rollout(3 * env.horizon, break_when_any_done=False)
    context = rollout["context"]
    for episode in range(3):
        steps = context[:, episode * env.horizon : (episode + 1) * env.horizon]
        assert (steps == steps[:, :1]).all(), "the context is constant within an episode"
    assert not torch.equal(context[:, 0], context[:, env.horizon]), "a new episode draws a new context"
    assert rollout["next", "done"][:, env.horizon - 1].all()


def test_partial_reset_restarts_only_finished_sub_envs():
    env = make_env("di_signs", num_envs=3, seed=2)
    td = env.reset()
    for _ in range(10):
        td["action"] = torch.ones(3, 2)
        td = env.step(td)["next"]
    before_obs, before_ctx = td["observation"].clone(), td["context"].clone()
    td["_reset"] = torch.tensor([[True], [False], [False]])
    after = env.reset(td)
    assert env._t.tolist() == [0, 10, 10]
    assert torch.equal(after["observation"][1:], before_obs[1:])
    assert torch.equal(after["context"][1:], before_ctx[1:])
    assert not torch.equal(after["context"][0], before_ctx[0])
    assert (after["observation"][0, 2:] == 0).all(), "a restarted sub-env starts at rest"


def test_collector_auto_resets_finished_sub_envs():
    from torchrl.collectors import Collector

    env = make_env("di_signs", num_envs=2, seed=0)
    collector = Collector(env, None, frames_per_batch=2 * 60, total_frames=2 * 60)
    batch = next(iter(collector))
    assert batch["next", "done"][:, env.horizon - 1].all()
    assert (batch["observation"][:, env.horizon, 2:] == 0).all(), "step after done is a fresh start"
    collector.shutdown()


def test_same_seed_same_episodes():
    a = make_env("di_signs", num_envs=4, seed=5).rollout(60, break_when_any_done=False)
    b = make_env("di_signs", num_envs=4, seed=5).rollout(60, break_when_any_done=False, policy=None)
    assert torch.equal(a["context"], b["context"])
    assert torch.equal(a["observation"][:, 0], b["observation"][:, 0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "di_signz"}, "env"),
        ({"name": "di_signs", "split": "test"}, "split"),
        ({"name": "di_signs", "num_envs": 0}, "num_envs"),
        ({"name": "di_signs", "num_envs": 2.5}, "num_envs"),
    ],
)
def test_make_env_rejects_bad_input(kwargs, field):
    with pytest.raises(ConfigError) as err:
        make_env(**kwargs)
    assert err.value.field == field
