"""The paper's tasks: the authors' context grids, transitions, context edits, resets, state, errors.

Reference values are either computed here from the authors' rule (np.linspace grids, the sorted
product, floor(linspace) indices) or hard-coded values checked against the authors' code
(`setup_context_env` with its defaults) when these tests were written.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from lit_dmash.envs import TaskSpec, context_names, env_names, make_env, split_contexts, task_spec, task_window
from lit_dmash.envs.paper import MUJOCO_TASKS, PAPER_TASKS
from lit_dmash.errors import ConfigError

SPLITS = ("train", "eval_in", "eval_out")
SIGN_TASKS = ("di", "di_perm", "cartpole", "cheetah", "reacher_easy", "reacher_hard", "reacher_perm")
CONTINUOUS_PAIRS = ("di_friction", "ode", "ball_in_cup", "walker", "walker_gym", "hopper_gym")


def _opts(name: str) -> dict:
    return {"k": 3} if name == "ode_k" else {}


def _authors_grid(lo: float, hi: float, olo: float, ohi: float, split: str) -> np.ndarray:
    m = 0.01 * (hi - lo)
    if split == "train":
        return np.linspace(lo, hi, 50).round(4)
    if split == "eval_in":
        return np.linspace(lo + m, hi - m, 50).round(4)
    return np.concatenate([np.linspace(olo, lo - m, 25).round(4), np.linspace(hi + m, ohi, 25).round(4)])


# ----------------------------------------------------------------------------- contexts
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", SIGN_TASKS + CONTINUOUS_PAIRS)
def test_contexts_follow_the_authors_rule(name, split):
    """<= 2 keys: the sorted product of the grids at indices floor(linspace(0, n - 1, 20))."""
    keys = task_spec(name).keys
    first = _authors_grid(*keys[0].train, *keys[0].out, split)
    if keys[1].binary:  # candidates (value, -1), (value, +1), ...: entry i = (grid[i // 2], -1 if i even)
        expected = [(first[i // 2], 1.0 if i % 2 else -1.0) for i in np.linspace(0, 99, 20).astype(int)]
    else:
        second = _authors_grid(*keys[1].train, *keys[1].out, split)
        expected = [(first[i // 50], second[i % 50]) for i in np.linspace(0, 2499, 20).astype(int)]
    got = split_contexts(name, split)
    assert got.dtype == torch.float64 and got.shape == (20, 2)
    assert got.tolist() == [list(map(float, row)) for row in expected]


def test_check_values_from_the_authors_code():
    di = split_contexts("di", "train")
    assert di[:4, 0].tolist() == [0.5, 0.5408, 0.602, 0.6429] and di[-2:, 0].tolist() == [1.4388, 1.5]
    assert "".join("+" if s > 0 else "-" for s in di[:, 1]) == "-+-+--+-+--+-+--+-++"
    di_out = split_contexts("di", "eval_out")[:, 0].tolist()
    assert di_out[:2] == [0.1, 0.1325] and di_out[9:11] == [0.4738, 1.5304] and di_out[-1] == 2.0
    gravity = split_contexts("walker", "eval_out")[:, 0].tolist()
    assert gravity[:2] == [0.98, 1.2993] and gravity[9:11] == [4.6523, 15.0085] and gravity[-1] == 19.62
    assert split_contexts("di_friction", "train")[:3].tolist() == [[0.5, 0.5], [0.5408, 1.1327], [0.602, 0.7653]]
    assert split_contexts("ball_in_cup", "eval_out")[1].tolist() == [1.58, 0.3959]
    assert split_contexts("cartpole", "eval_in")[0].tolist() == [0.3055, -1.0]


@pytest.mark.parametrize("name", SIGN_TASKS)
def test_eleven_inverted_nine_normal_in_every_split(name):
    for split in SPLITS:
        signs = split_contexts(name, split)[:, 1]
        assert (signs == -1).sum() == 11 and (signs == 1).sum() == 9


@pytest.mark.parametrize("name", [*SIGN_TASKS, *CONTINUOUS_PAIRS, "ode_k"])
def test_eval_splits_leave_the_training_values(name):
    spec = task_spec(name, **_opts(name))
    train = split_contexts(name, "train", **_opts(name))
    for j, key in enumerate(spec.keys):
        if key.binary:
            continue
        lo, hi = key.train
        eval_in = split_contexts(name, "eval_in", **_opts(name))[:, j]
        eval_out = split_contexts(name, "eval_out", **_opts(name))[:, j]
        assert not set(eval_in.tolist()) & set(train[:, j].tolist())
        assert ((eval_in > lo) & (eval_in < hi)).all()
        assert ((eval_out < lo) | (eval_out > hi)).all()
        assert (eval_out < lo).any() and (eval_out > hi).any(), "eval_out lies on both sides"


def test_ode_k_draws_per_seed_with_legacy_numpy():
    seed0 = split_contexts("ode_k", "train", seed=0, k=3)
    assert seed0[0].tolist() == [-5.0, 2.3469, -3.9796]  # the authors' code, seed 0
    assert split_contexts("ode_k", "eval_out", seed=1, k=3)[0].tolist() == [-9.5917, -8.5708, 7.9583]
    assert not torch.equal(seed0, split_contexts("ode_k", "train", seed=1, k=3))
    rng = np.random.RandomState(5)  # np.random.seed(5); train, eval_in, eval_out draw in that order
    grids = {s: _authors_grid(-5.0, 5.0, -10.0, 10.0, s).tolist() for s in SPLITS}
    for split in SPLITS:
        draws = sorted(tuple(float(rng.choice(grids[split])) for _ in range(4)) for _ in range(20))
        assert split_contexts("ode_k", split, seed=5, k=4).tolist() == [list(row) for row in draws]
    assert context_names("ode_k", k=4) == ["parameter_0", "parameter_1", "parameter_2", "parameter_3"]
    assert task_spec("ode_k", k=7).authors_id == "dmash/ODE-7-v0"


def test_fewer_candidates_than_contexts_repeat_them():
    ode1 = split_contexts("ode_k", "train", 53, k=1)[:, 0]  # 50 candidates: 0..49 once, then 0, 1, 2
    grid = _authors_grid(-5.0, 5.0, -10.0, 10.0, "train")
    assert ode1.tolist() == [*grid.tolist(), *grid[:3].tolist()]


def test_task_data():
    spec = task_spec("walker_gym")
    assert (spec.group, spec.horizon, spec.window, spec.updates) == ("overlapping", 1000, 128, 500_000)
    assert spec.authors_id == "dmash/Walker2d-v5" and spec.context_names == ["gravity", "actuator_strength"]
    di = task_spec("di")
    assert (di.group, di.horizon, di.window, di.updates, di.binary_keys) == (
        "non-overlapping",
        100,
        24,
        100_000,
        ["action_factor"],
    )
    assert task_spec("ode").group == "weakly non-overlapping" and task_spec("ode").horizon == 200
    assert task_spec("di_perm").authors_id is None and task_spec("reacher_perm").binary_keys == ["action_order"]
    assert [task_window(n) for n in ("di", "ode_k", "walker_gym", "di_signs", "cheetah_signs")] == [
        24,
        24,
        128,
        24,
        128,
    ]
    assert make_env("ode", num_envs=1).split_names == ["train", "eval_in", "eval_out"]


# ----------------------------------------------------------------------------- specs and tensordicts
@pytest.mark.parametrize("name", PAPER_TASKS)
def test_check_env_specs(name):
    env = make_env(name, num_envs=2, horizon=4, **_opts(name))
    check_env_specs(env)
    rollout = env.rollout(6, break_when_any_done=False)
    assert rollout["observation"].dtype == torch.float32
    assert rollout["context"].shape == (2, 6, len(env.context_names))
    torch.testing.assert_close(rollout["context"][:, 0], env.contexts[:2].float())
    assert env.contexts.shape == (20, len(env.context_names)) and env.task.name == name
    assert not rollout["next", "terminated"].any()
    assert rollout["next", "truncated"][:, 3].all() and not rollout["next", "done"][:, :3].any()


@pytest.mark.parametrize(
    ("name", "obs_dim", "horizon"),
    [("walker", 24, 1000), ("cheetah", 17, 1000), ("cartpole", 5, 1000), ("ball_in_cup", 8, 1000), ("ode", 1, 200)],
)
def test_observation_layout_and_episode_length(name, obs_dim, horizon):
    env = make_env(name, num_envs=1)
    assert env.observation_spec["observation"].shape[-1] == obs_dim and env.horizon == horizon


def test_walker_observation_is_sorted_keys_height_orientations_velocity():
    env = make_env("walker", num_envs=1)
    obs = env.reset()["observation"][0].double()
    physics = env.simulators[0].env.physics
    torch.testing.assert_close(obs[0], torch.tensor(physics.torso_height()), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[1:15], torch.from_numpy(physics.orientations()), atol=1e-6, rtol=0)
    torch.testing.assert_close(obs[15:], torch.from_numpy(physics.velocity()), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- transitions
def _set_state(env, **tensors) -> None:
    state = env.env_state()
    state.update(tensors)
    env.load_env_state(state)


@pytest.mark.parametrize("name", ["di", "di_friction", "di_perm"])
def test_double_integrator_one_step_is_the_closed_form(name):
    env = make_env(name, "eval_out", num_envs=20)
    td = env.reset()
    rng = np.random.default_rng(0)
    pos = rng.uniform(-0.3, 0.3, (20, 2)).astype(np.float32)
    vel = rng.uniform(-1, 1, (20, 2)).astype(np.float32)
    action = rng.uniform(-1.3, 1.3, (20, 2)).astype(np.float32)
    _set_state(env, position=torch.from_numpy(pos), velocity=torch.from_numpy(vel))
    out = env.step(td.set("action", torch.from_numpy(action)))["next"]
    ctx = dict(zip(env.context_names, env.contexts.numpy().T, strict=True))
    mass, friction = ctx["mass"][:, None], ctx.get("friction", np.zeros(20))[:, None]
    a = action[:, ::-1] if name == "di_perm" else action
    a = np.where(ctx["action_order"][:, None] < 0, a, action) if name == "di_perm" else a
    force = np.clip(a * ctx.get("action_factor", np.ones(20))[:, None].astype(np.float32), -1, 1)
    new_pos = np.clip(pos + vel * np.float32(0.1), -1, 1)
    damping = (1 - 0.1 * friction / mass).astype(np.float32)
    new_vel = np.clip(vel * damping + force / mass.astype(np.float32) * np.float32(0.1), -1, 1)
    np.testing.assert_array_equal(out["observation"].numpy(), np.concatenate([new_pos, new_vel], 1))
    expected_reward = (np.sqrt((new_pos * new_pos).sum(1)) <= np.float32(0.1)).astype(np.float32)
    np.testing.assert_array_equal(out["reward"][:, 0].numpy(), expected_reward)
    assert expected_reward.sum() > 0, "some steps reach the goal"


def test_di_perm_swaps_instead_of_flipping():
    env = make_env("di_perm", num_envs=2)  # context 0: action_order -1 (swapped), context 1: +1
    td = env.reset()
    _set_state(env, position=torch.zeros(2, 2), velocity=torch.zeros(2, 2))
    out = env.step(td.set("action", torch.tensor([[0.5, -0.25], [0.5, -0.25]])))["next"]["observation"]
    masses = env.contexts[:2, 0].float()
    torch.testing.assert_close(out[0, 2:], torch.tensor([-0.25, 0.5]) / masses[0] * 0.1)
    torch.testing.assert_close(out[1, 2:], torch.tensor([0.5, -0.25]) / masses[1] * 0.1)


@pytest.mark.parametrize(("name", "k"), [("ode", 2), ("ode_k", 4)])
def test_ode_one_step_is_the_closed_form(name, k):
    opts = {"k": k} if name == "ode_k" else {}
    env = make_env(name, "eval_in", num_envs=20, **opts)
    td = env.reset()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, (20, 1))
    action = rng.uniform(-1, 1, (20, 2)).astype(np.float32)
    _set_state(env, x=torch.from_numpy(x))
    out = env.step(td.set("action", torch.from_numpy(action)))["next"]
    alpha = action[:, 0].astype(np.float64) + 1j * action[:, 1].astype(np.float64)
    xdot = sum(env.contexts[:, j].numpy() * (alpha ** (j + 1)).real for j in range(k))
    new_x = np.clip(x[:, 0] + 0.01 * xdot, -20, 20)
    np.testing.assert_allclose(out["observation"][:, 0].numpy(), new_x.astype(np.float32), rtol=0, atol=1e-6)
    bands = np.select([abs(new_x) < b for b in (0.05, 0.1, 0.2, 0.5, 2.0)], [1.0, 0.5, 1 / 3, 0.25, 0.05], 0.0)
    np.testing.assert_allclose(out["reward"][:, 0].numpy(), bands, rtol=1e-6)


@pytest.mark.parametrize("name", ["walker_gym", "hopper_gym"])
def test_fallen_gym_walker_runs_the_full_episode_without_healthy_bonus(name):
    env = make_env(name, num_envs=1)
    td = env.reset()
    sim = env.simulators[0]
    fallen_steps = 0
    for t in range(1000):
        x_before = float(sim.data.qpos[0])
        td = env.step(td.set("action", torch.zeros(1, sim.action_dim)))["next"]
        assert not td["terminated"].any()
        assert td["done"].item() == (t == 999)
        if not sim.env.is_healthy:  # zero actions: the walker collapses; no bonus while fallen
            fallen_steps += 1
            forward = (float(sim.data.qpos[0]) - x_before) / sim.env.dt
            assert td["reward"].item() == pytest.approx(forward, abs=1e-5)
    assert fallen_steps > 500


# ----------------------------------------------------------------------------- contexts in the simulator
def _geom(sim, name: str) -> int:
    return mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, name)


def _body(sim, name: str) -> int:
    return mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, name)


def test_dm_control_contexts_are_written_into_the_model():
    cheetah = make_env("cheetah", "eval_out", num_envs=20)
    a, b = cheetah.simulators[0], cheetah.simulators[19]  # leg length 0.4 and 1.6
    ratio = cheetah.contexts[19, 0].item() / cheetah.contexts[0, 0].item()
    for geom in ("bthigh", "fshin", "ffoot"):
        assert b.model.geom_size[_geom(b, geom), 1] == pytest.approx(ratio * a.model.geom_size[_geom(a, geom), 1])
    assert b.model.body_pos[_body(b, "bfoot"), 0] == pytest.approx(ratio * a.model.body_pos[_body(a, "bfoot"), 0])

    walker = make_env("walker", num_envs=2)
    for sim, (gravity, strength) in zip(walker.simulators, walker.contexts[:2].tolist(), strict=True):
        assert sim.model.opt.gravity.tolist() == [0.0, 0.0, -gravity]
        assert sim.model.actuator_gear[:, 0].tolist() == pytest.approx(
            [100 * strength, 50 * strength, 20 * strength] * 2
        )

    cup = make_env("ball_in_cup", num_envs=2)
    for sim, (gravity, distance) in zip(cup.simulators, cup.contexts[:2].tolist(), strict=True):
        assert sim.model.tendon_range[0].tolist() == [0.0, distance] and sim.model.opt.gravity[2] == -gravity
        assert sim.model.body_pos[_body(sim, "ball"), 2] == pytest.approx(0.2 + 0.3 - distance)

    reacher = make_env("reacher_easy", num_envs=2)
    for sim, (length, _) in zip(reacher.simulators, reacher.contexts[:2].tolist(), strict=True):
        assert sim.model.geom_size[_geom(sim, "arm"), 1] == pytest.approx(0.06 * length)  # fromto end 0.12 * length
        assert sim.model.body_pos[_body(sim, "finger"), 0] == pytest.approx(0.12 * length)

    cartpole = make_env("cartpole", num_envs=2)
    for sim, (length, _) in zip(cartpole.simulators, cartpole.contexts[:2].tolist(), strict=True):
        pole = _geom(sim, "pole_1")
        assert sim.model.geom_size[pole, 1] == pytest.approx(length) and sim.model.geom_pos[pole, 2] == pytest.approx(
            length
        )
        assert sim.model.body_mass[_body(sim, "pole_1")] == pytest.approx(0.1)


def test_gym_contexts_are_written_into_the_model():
    env = make_env("hopper_gym", "eval_out", num_envs=2)
    for sim, (gravity, strength) in zip(env.simulators, env.contexts[:2].tolist(), strict=True):
        assert sim.model.opt.gravity.tolist() == [0.0, 0.0, -gravity]
        assert sim.model.actuator_gear[:, 0].tolist() == pytest.approx([200 * strength] * 3)


def test_action_factor_flips_the_whole_action():
    env = make_env("reacher_easy", num_envs=2)  # context 0: -1, context 1: +1, same start state
    td = env.reset()
    env.load_env_state({**env.env_state(), "sim_physics": env.env_state()["sim_physics"][[1, 1]]})
    out = env.step(td.set("action", torch.tensor([[0.4, -0.7], [-0.4, 0.7]])))["next"]
    assert (out["observation"][0] != out["observation"][1]).any()  # different arm lengths...
    for sim in env.simulators:  # ...but the same controls reached both simulators
        assert sim.data.ctrl.tolist() == pytest.approx([-0.4, 0.7])


# ----------------------------------------------------------------------------- resets and state
def test_each_sub_env_keeps_its_context_across_resets():
    env = make_env("di", num_envs=25, horizon=3)
    rollout = env.rollout(9, break_when_any_done=False)
    expected = env.contexts[torch.arange(25) % 20].float()
    assert (rollout["context"] == expected[:, None]).all()
    starts = rollout["observation"][:, ::3]
    assert (starts[..., 2:] == 0).all() and (starts[..., :2].abs() > 0.8).all()


def test_shared_reset_streams_give_every_sub_env_the_same_starts():
    shared = make_env("di", num_envs=3, horizon=2)
    td = shared.reset()
    assert (td["observation"] == td["observation"][:1]).all()
    td["_reset"] = torch.tensor([[True], [False], [False]])
    second_of_env0 = shared.reset(td)["observation"][0]
    td["_reset"] = torch.tensor([[False], [True], [False]])
    assert torch.equal(shared.reset(td)["observation"][1], second_of_env0), "k-th episode, k-th draw"
    independent = make_env("di", num_envs=3, reset_streams="independent").reset()["observation"]
    assert not torch.equal(independent[0], independent[1])

    reacher = make_env("reacher_easy", num_envs=2)
    reacher.reset()
    targets = [sim.env.physics.named.model.geom_pos["target"].copy() for sim in reacher.simulators]
    np.testing.assert_array_equal(targets[0], targets[1])


@pytest.mark.parametrize("name", ["di", "ode_k", "cheetah", "reacher_easy", "walker_gym"])
def test_env_state_round_trip_continues_identically(name):
    opts = {"k": 3} if name == "ode_k" else {}
    first = make_env(name, num_envs=2, seed=3, horizon=4, **opts)
    td = first.reset()
    generator = torch.Generator().manual_seed(0)
    actions = [torch.rand(first.action_spec.shape, generator=generator) * 2 - 1 for _ in range(12)]
    for action in actions[:3]:
        _, td = first.step_and_maybe_reset(td.set("action", action))
    state, saved = first.env_state(), td.clone()
    assert all(isinstance(v, (int, float, torch.Tensor)) for v in state.values())

    def play(env, td):
        out = []
        for action in actions[3:]:  # crosses two resets
            step, td = env.step_and_maybe_reset(td.set("action", action.clone()))
            out.append(step["next"].select("observation", "reward", "done"))
        return torch.stack(out)

    expected = play(first, td)
    second = make_env(name, num_envs=2, seed=3, horizon=4, **opts)
    second.reset()
    second.load_env_state(state)
    assert (play(second, saved) == expected).all()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "dii"}, f"invalid env='dii': expected one of {env_names()}"),
        (
            {"name": "di", "split": "eval_pattern"},
            "invalid split='eval_pattern': task 'di' has splits ['train', 'eval_in', 'eval_out']",
        ),
        ({"name": "di", "contexts_per_split": 0}, "invalid contexts_per_split=0: expected an integer >= 1"),
        ({"name": "cheetah", "num_envs": 0}, "invalid num_envs=0: expected an integer >= 1"),
        ({"name": "ode_k", "k": 21}, "invalid k=21: expected an integer in 1..20"),
        ({"name": "ode_k", "k": 0}, "invalid k=0: expected an integer in 1..20"),
        ({"name": "ode_k"}, "invalid k=None: task 'ode_k' needs the task option k (an integer in 1..20)"),
        ({"name": "di", "k": 3}, "invalid task option='k': task 'di' accepts ['reset_streams']"),
        (
            {"name": "walker", "reset_streams": "per_env"},
            "invalid reset_streams='per_env': expected one of ['shared', 'independent']",
        ),
    ],
)
def test_bad_input_is_one_clear_line(kwargs, message):
    with pytest.raises(ConfigError) as info:
        make_env(**kwargs)
    assert str(info.value) == message


def test_task_yaml_with_overlapping_out_range_is_refused():
    data = {
        "authors_id": None,
        "group": "overlapping",
        "horizon": 100,
        "window": 24,
        "updates": 1000,
        "keys": [{"name": "mass", "default": 1.0, "train": [0.5, 1.5], "out": [0.495, 2.0]}],
    }
    with pytest.raises(ConfigError) as info:
        TaskSpec.from_dict("bad", data)
    assert str(info.value) == (
        "invalid bad.keys.0.out=[0.495, 2.0]: expected out range strictly outside train [0.5, 1.5] "
        "plus the margin 0.01: out low < 0.49 and out high > 1.51"
    )
    assert len(MUJOCO_TASKS) == 9
