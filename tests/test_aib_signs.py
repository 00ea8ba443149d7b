"""The sign-pattern extension's MuJoCo domains (`*_signs`): specs, context physics, splits, seeds."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch
from conftest import REPO
from torchrl.envs.utils import check_env_specs

from lit_dmash.envs import context_space, make_env, variant_file
from lit_dmash.envs.extension.aib import DOMAINS
from lit_dmash.envs.extension.mujoco_env import MODEL_PARAMETERS
from lit_dmash.envs.simulators import SimulationFailure
from lit_dmash.errors import ConfigError

AIB_ENVS = list(DOMAINS)
PERMUTATION_FILE = str(variant_file("cheetah_permutation"))


@pytest.mark.parametrize("num_envs", [1, 2])
@pytest.mark.parametrize("name", AIB_ENVS)
def test_specs_hold(name, num_envs):
    env = make_env(name, "train", num_envs=num_envs, seed=0, horizon=20)
    check_env_specs(env)
    rollout = env.rollout(25, break_when_any_done=False)  # crosses one auto-reset
    assert rollout["next", "observation"].dtype == torch.float32
    assert rollout["context"].shape[-1] == context_space(name).dim


def _copy_state(env, source: int, target: int) -> None:
    """Put sub-env `target` in exactly the physical state of sub-env `source`."""
    sims = env.simulators
    src, dst = sims[source], sims[target]
    size = mujoco.mj_stateSize(src.model, mujoco.mjtState.mjSTATE_INTEGRATION)  # incl. warm start
    state = np.empty(size)
    mujoco.mj_getState(src.model, src.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_setState(dst.model, dst.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(dst.model, dst.data)


def _contexts(space, signs, params=1.0, perms=None) -> torch.Tensor:
    rows = []
    for pattern, perm in zip(signs, perms or [None] * len(signs), strict=True):
        row = list(pattern) + (list(perm) if perm is not None else []) + [params] * len(space.param_names)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


def _actuated_dofs(sim) -> np.ndarray:
    joints = sim.model.actuator_trnid[:, 0]
    return sim.model.jnt_dofadr[joints]


@pytest.mark.parametrize("name", AIB_ENVS)
def test_inverted_actuator_reverses_its_joint_velocity_change(name):
    """Same state, same action on actuator k: its joint's velocity change flips iff k is inverted.

    Sub-env pairs (normal, pattern) push one actuator each; a last sub-env takes no action and
    gives the passive dynamics, subtracted from both. Joints are coupled through the mass matrix,
    so each actuator is tested alone; constraints (contacts, joint limits) are off, since a foot
    pushed into the ground and one lifted from it do not move symmetrically (physics, not context).
    """
    space = context_space(name)
    pattern = next(p for p in space.split("train").sign_patterns if -1.0 in p and 1.0 in p)
    num_act, plus = space.num_actuators, [1.0] * space.num_actuators
    num_envs = 2 * num_act + 1
    env = make_env(name, "train", num_envs=num_envs, seed=0)
    td = env.reset()
    env.set_contexts(_contexts(space, [plus, pattern] * num_act + [plus]))
    for sim in env.simulators:
        sim.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
        mujoco.mj_forward(sim.model, sim.data)  # dm_control's next step reads these derived quantities
    for target in range(1, num_envs):
        _copy_state(env, 0, target)
    dofs = _actuated_dofs(env.simulators[0])
    action = torch.zeros(num_envs, num_act)
    for k in range(num_act):
        action[2 * k : 2 * k + 2, k] = 0.3
    before = np.stack([sim.data.qvel[dofs].copy() for sim in env.simulators])
    env.step(td.set("action", action))
    change = np.stack([sim.data.qvel[dofs].copy() for sim in env.simulators]) - before
    effect = change[:-1] - change[-1]  # minus the passive dynamics
    own_normal = np.array([effect[2 * k, k] for k in range(num_act)])
    own_pattern = np.array([effect[2 * k + 1, k] for k in range(num_act)])
    signs = np.asarray(pattern)
    assert np.abs(own_normal).min() > 1e-3, "each actuator must move its own joint"
    assert (np.sign(own_pattern) == signs * np.sign(own_normal)).all()
    np.testing.assert_allclose(own_pattern, signs * own_normal, rtol=0.02, atol=1e-6)


@pytest.mark.parametrize("name", AIB_ENVS)
def test_sign_pattern_equals_flipping_the_action(name):
    """Pattern s with action a steps exactly like the normal pattern with action s * a."""
    space = context_space(name)
    pattern = np.asarray(space.split("train").sign_patterns[-1])
    plus = [1.0] * space.num_actuators
    env = make_env(name, "train", num_envs=2, seed=1)
    td = env.reset()
    env.set_contexts(_contexts(space, [pattern.tolist(), plus]))
    _copy_state(env, 0, 1)
    action = torch.rand(space.num_actuators) * 2 - 1
    td["action"] = torch.stack([action, action * torch.as_tensor(pattern, dtype=torch.float32)])
    out = env.step(td)["next", "observation"]
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)


def test_permutation_routes_policy_outputs_to_actuators():
    """Perm p with action a steps exactly like the identity with action a[p]."""
    space = context_space("cheetah_signs", PERMUTATION_FILE)
    perm = list(space.split("eval_pattern").permutations[0])
    identity = list(range(space.num_actuators))
    plus = [1.0] * space.num_actuators
    env = make_env("cheetah_signs", "train", num_envs=2, seed=0, context_file=PERMUTATION_FILE)
    td = env.reset()
    env.set_contexts(_contexts(space, [plus, plus], perms=[perm, identity]))
    _copy_state(env, 0, 1)
    action = torch.rand(space.num_actuators) * 2 - 1
    td["action"] = torch.stack([action, action[perm]])
    out = env.step(td)["next", "observation"]
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    assert not torch.equal(action, action[perm])


@pytest.mark.parametrize("name", AIB_ENVS)
def test_continuous_context_is_written_into_the_compiled_model(name):
    space = context_space(name)
    env = make_env(name, "eval_out", num_envs=3, seed=2)
    defaults = make_env(name, "train", num_envs=1, seed=0).simulators[0].model  # a fresh, unscaled model
    contexts = env.reset()["context"]
    for k, param in enumerate(space.param_names):
        scales = contexts[:, space.param_offset + k]
        assert (~space.split("train").contains(contexts)).all()  # eval_out values lie outside train
        for sim, scale in zip(env.simulators, scales.tolist(), strict=True):
            for attr, column in MODEL_PARAMETERS[param]:
                got, base = getattr(sim.model, attr), getattr(defaults, attr)
                if column is not None:
                    got, base = got[:, column], base[:, column]
                np.testing.assert_allclose(got, base * scale, rtol=1e-6)


@pytest.mark.parametrize("name", [*AIB_ENVS, "di_signs"])
def test_default_splits_follow_the_benchmark_design(name):
    space = context_space(name)
    train = space.split("train")
    patterns = np.asarray(train.sign_patterns)
    assert ((patterns == 1).any(0) & (patterns == -1).any(0)).all(), "train must see every actuator under both signs"
    for pattern in space.split("eval_pattern").sign_patterns:
        assert pattern not in train.sign_patterns
    assert set(space.split("eval_out").sign_patterns) <= set(train.sign_patterns)
    for train_ranges, out_ranges in zip(train.param_ranges, space.split("eval_out").param_ranges, strict=True):
        for low, high in out_ranges:  # weakly non-overlapping: a gap between train and eval_out
            assert all(high < t_low or low > t_high for t_low, t_high in train_ranges)


@pytest.mark.parametrize("name", ["walker_gym_signs", "cheetah_signs"])
def test_seeds_reproduce_contexts_and_observations(name):
    first, again, other = (make_env(name, "train", num_envs=4, seed=s) for s in (3, 3, 4))
    a, b, c = first.reset(), again.reset(), other.reset()
    torch.testing.assert_close(a["context"], b["context"])
    torch.testing.assert_close(a["observation"], b["observation"])
    assert not torch.equal(a["context"], c["context"])


@pytest.mark.parametrize(
    ("name", "why"),
    [("walker_gym_signs", "MuJoCo warned of a non-finite"), ("walker_signs", "PhysicsError: Physics state is invalid")],
)
def test_unstable_simulation_raises_naming_task_context_and_step(name, why):
    """No made-up transition (reward 0, the last observation) comes back: the step raises, loudly."""
    env = make_env(name, "train", num_envs=2, seed=0)
    td = env.reset()
    td["action"] = torch.zeros(2, 6)
    env.step(td)
    env.simulators[1].data.qvel[:] = np.nan
    with pytest.raises(SimulationFailure) as info:
        env.step(td)
    message = str(info.value)
    assert message.startswith(f"simulation failed in task {name}, sub-env 1 (context sign_0=")
    assert ", episode step 2: " in message and why in message and "\n" not in message
    assert info.value.sub_envs == [1] and env.sim_failures == 1
    td = env.reset()  # a reset makes the env usable again
    out = env.step(td.set("action", torch.zeros(2, 6)))["next"]
    assert torch.isfinite(out["observation"]).all() and not out["done"].any()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "cheetah_signs", "horizon": 0}, "horizon"),
        ({"name": "cheetah_signs", "split": "test"}, "split"),
        (
            {"name": "cheetah_signs", "context_file": REPO / "tests/data/di_friction_single.yaml"},
            "cheetah_signs.params",
        ),
        (
            {"name": "cheetah_signs", "context_file": REPO / "tests/data/two_actuators_gain.yaml"},
            "cheetah_signs.num_actuators",
        ),
        ({"name": "cheetah_signs", "k": 3}, "task option"),
    ],
)
def test_bad_env_arguments_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        make_env(**kwargs)
    assert info.value.field == field


def test_a_new_mujoco_domain_is_one_registration(data_dir):
    """The README's worked example: register dm_control hopper with a context file, then make it."""
    from functools import partial

    from lit_dmash.envs import register_extension_env
    from lit_dmash.envs.extension.aib import Domain, make_mujoco_env
    from lit_dmash.envs.registry import unregister_env

    hopper = Domain("dm_control", ("hopper", "hop"), horizon=500)
    register_extension_env("hopper_example", partial(make_mujoco_env, hopper))
    try:
        env = make_env("hopper_example", "eval_out", num_envs=2, context_file=data_dir / "hopper_signs.yaml")
        check_env_specs(env)
        assert env.horizon == 500 and env.reset()["context"][:, -1].min() >= 1.4
    finally:
        unregister_env("hopper_example")
