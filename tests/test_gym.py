"""The Gymnasium ids: the same transitions as `make_env`, gymnasium's own checker, one-line errors,
our evaluation protocol, and the Stable-Baselines3 example (skipped without the `sb3` extra)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from conftest import REPO, tiny_module
from gymnasium.utils.env_checker import check_env
from tensordict import TensorDict

from lit_dmash import render
from lit_dmash.envs import make_env, split_contexts, task_spec
from lit_dmash.envs.paper import MUJOCO_TASKS, PAPER_TASKS, TORCH_TASKS
from lit_dmash.envs.paper_mujoco import GYM_TASKS
from lit_dmash.envs.task_contexts import SPLITS
from lit_dmash.errors import ConfigError
from lit_dmash.gym import GYM_IDS, evaluate_zero_shot, gym_id

OPTIONS = {"ode_k": {"k": 3}}  # ode_k needs its k; every other task takes no option
DMC_TASKS = [task for task in MUJOCO_TASKS if task not in GYM_TASKS]
INFINITE_BOX = re.compile(r"A Box observation space (minimum|maximum) value is -?infinity")


def reference_run(task: str, split: str, seed: int, horizon: int, episodes: int, num_envs: int = 20) -> dict:
    """`episodes` episodes of `make_env(task, split, num_envs, seed)` under seeded random actions."""
    env = make_env(task, split, num_envs=num_envs, seed=seed, horizon=horizon, **OPTIONS.get(task, {}))
    rng = np.random.default_rng(seed)
    run = {"obs": [], "reward": [], "truncated": [], "actions": [], "context": None}
    for _ in range(episodes):
        td = env.reset()
        run["obs"].append(td["observation"].numpy().copy())
        run["context"] = td["context"].numpy().copy()
        for _ in range(horizon):
            action = rng.uniform(-1, 1, size=env.action_spec.shape).astype(np.float32)
            out = env.step(TensorDict(action=torch.from_numpy(action), batch_size=env.batch_size))["next"]
            run["actions"].append(action)
            run["obs"].append(out["observation"].numpy().copy())
            run["reward"].append(out["reward"].numpy()[:, 0].copy())
            run["truncated"].append(out["truncated"].numpy()[:, 0].copy())
    env.close()
    return run


def check_same_transitions(task: str, split: str, contexts: list[int], seed: int = 3, horizon: int = 4) -> None:
    """The Gymnasium env of context i replays sub-env i of the 20-env batch, after being used with another seed."""
    ref = reference_run(task, split, seed, horizon, episodes=2)
    for i in contexts:
        env = gymnasium.make(gym_id(task), split=split, context=i, horizon=horizon, **OPTIONS.get(task, {}))
        env.reset(seed=seed + 100)  # another seed first: the seeded reset must start over
        env.step(env.action_space.sample())
        obs, info = env.reset(seed=seed)
        np.testing.assert_array_equal(info["context"], ref["context"][i])
        seen, rewards, truncated = [obs], [], []
        actions = iter(ref["actions"])
        for episode in range(2):
            if episode:
                seen.append(env.reset()[0])
            for _ in range(horizon):
                obs, reward, term, trunc, info = env.step(next(actions)[i])
                assert term is False
                seen.append(obs)
                rewards.append(reward)
                truncated.append(trunc)
        np.testing.assert_array_equal(np.stack(seen), np.stack(ref["obs"])[:, i], err_msg=f"{task} context {i}")
        np.testing.assert_array_equal(np.array(rewards, dtype=np.float32), np.stack(ref["reward"])[:, i])
        assert truncated == [t == horizon - 1 for _ in range(2) for t in range(horizon)]
        env.close()


def test_every_paper_task_has_an_id_and_the_readme_lists_them():
    assert set(GYM_IDS) == set(PAPER_TASKS)
    assert len(set(GYM_IDS.values())) == len(GYM_IDS)
    readme = (REPO / "README.md").read_text()
    for task, env_id in GYM_IDS.items():
        assert env_id in gymnasium.registry
        assert f"`{env_id}`" in readme, env_id
        authors = task_spec(task, **OPTIONS.get(task, {})).authors_id
        if authors is not None:
            authors = authors.replace("ODE-3-v0", "ODE-{k}-v0")  # the table names the template
            assert f"`{authors}`" in readme, authors


@pytest.mark.parametrize("task", list(TORCH_TASKS))
def test_torch_tasks_same_transitions_as_make_env(task):
    check_same_transitions(task, "eval_out", [0, 7, 19], horizon=6)


@pytest.mark.integration
@pytest.mark.parametrize("task", ["cheetah", "reacher_perm"])
def test_dm_control_tasks_same_transitions_as_make_env(task):
    check_same_transitions(task, "train", [0, 13])


@pytest.mark.integration
@pytest.mark.parametrize("task", list(GYM_TASKS))
def test_gymnasium_mujoco_tasks_same_transitions_as_make_env(task):
    check_same_transitions(task, "eval_in", [2, 19])


@pytest.mark.parametrize("task", ["di", "walker_gym"])
def test_make_vec_is_make_env_with_next_step_autoreset(task):
    """Sub-env i in context i mod 20 (25 sub-envs), reseeded as a fresh batch; episode 2 starts on the next step."""
    horizon, seed = 3, 5
    ref = reference_run(task, "eval_in", seed, horizon, episodes=2, num_envs=25)
    envs = gymnasium.make_vec(gym_id(task), num_envs=25, split="eval_in", horizon=horizon)
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    envs.reset(seed=seed + 1)
    envs.step(envs.action_space.sample())
    obs, info = envs.reset(seed=seed)
    contexts = split_contexts(task, "eval_in", 20, seed).float().numpy()
    np.testing.assert_array_equal(info["context"], contexts[np.arange(25) % 20])
    actions, seen, rewards = ref["actions"], [obs], []
    for t in range(2 * horizon):
        if t == horizon:  # NEXT_STEP: the step after the truncation starts episode 2, its action ignored
            obs, reward, term, trunc, _ = envs.step(envs.action_space.sample())
            assert not (reward.any() or term.any() or trunc.any())
            seen.append(obs)
        obs, reward, term, trunc, info = envs.step(actions[t])
        seen.append(obs)
        rewards.append(reward)
        assert not term.any() and trunc.all() == (t % horizon == horizon - 1)
    envs.close()
    np.testing.assert_array_equal(np.stack(seen), np.stack(ref["obs"]))  # both resets of make_env included
    np.testing.assert_array_equal(np.stack(rewards), np.stack(ref["reward"]))


@pytest.mark.integration
@pytest.mark.parametrize("task", list(PAPER_TASKS))
def test_check_env_passes_on_every_task_and_split(task):
    """gymnasium's checker, its render check included where rendering needs no OpenGL (torch tasks)."""
    mujoco = task in MUJOCO_TASKS
    for split in SPLITS:
        env = gymnasium.make(gym_id(task), split=split, context=19, horizon=5, **OPTIONS.get(task, {}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=mujoco)
        env.close()
        unexpected = [str(w.message) for w in caught if not INFINITE_BOX.search(str(w.message))]
        assert unexpected == [], f"{task}/{split}: {unexpected}"


BAD_ARGUMENTS = [
    ({"split": "test"}, "split='test': expected one of ['train', 'eval_in', 'eval_out']"),
    ({"context": 20}, "context=20: expected an integer in 0..19 (contexts_per_split)"),
    ({"context": 4, "contexts_per_split": 4}, "context=4: expected an integer in 0..3"),
    ({"context": "3"}, "context='3'"),
    ({"frame_skip": 2}, "option='frame_skip': lit_dmash/Cheetah-v0 accepts ['split', 'context',"),
    ({"reset_streams": "independent"}, "option='reset_streams'"),
    ({"horizon": 0}, "horizon=0: expected an integer >= 1"),
    (
        {"render_mode": "ansi"},
        "render_mode='ansi': expected one of [None, 'rgb_array']",
    ),  # 'human' works: gymnasium wraps rgb_array
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
@pytest.mark.filterwarnings("ignore:.*render_mode='ansi':UserWarning")  # gymnasium warns, then we refuse it
def test_bad_arguments_are_one_line_before_anything_is_built(monkeypatch, kwargs, message):
    def no_build(*args, **kw):
        raise AssertionError("an env was built before the arguments were checked")

    monkeypatch.setattr("lit_dmash.gym.batch.build_paper_env", no_build)
    with pytest.raises(ConfigError) as err:
        gymnasium.make("lit_dmash/Cheetah-v0", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_task_options_vector_arguments_and_reset_arguments():
    with pytest.raises(ConfigError, match=r"^invalid k=None: task 'ode_k' needs the task option k"):
        gymnasium.make("lit_dmash/ODE-k-v0")
    with pytest.raises(ConfigError, match=r"^invalid option='k': lit_dmash/ODE-v0 accepts"):
        gymnasium.make("lit_dmash/ODE-v0", k=3)
    with pytest.raises(ConfigError, match=r"^invalid num_envs=0: expected an integer >= 1$"):
        gymnasium.make_vec("lit_dmash/DI-v0", num_envs=0)
    envs = gymnasium.make_vec("lit_dmash/DI-v0", num_envs=2, contexts_per_split=2)
    with pytest.raises(ConfigError, match=r"^invalid seed=\[1, 2\]: expected None or an integer >= 0"):
        envs.reset(seed=[1, 2])
    env = gymnasium.make("lit_dmash/DI-v0")
    with pytest.raises(ConfigError, match=r"^invalid options=\{'split': 'eval_in'\}: reset takes no options"):
        env.reset(options={"split": "eval_in"})


def test_torch_task_renders_the_frame_make_env_renders():
    env = gymnasium.make("lit_dmash/DI-Perm-v0", split="eval_out", context=2, render_mode="rgb_array")
    env.reset(seed=1)
    env.step(np.array([0.5, -1.0], dtype=np.float32))
    frame = env.render()
    ref = make_env("di_perm", "eval_out", num_envs=3, seed=1)
    ref.reset()
    ref.step(TensorDict(action=torch.tensor([[0.5, -1.0]] * 3), batch_size=[3]))
    assert frame.dtype == np.uint8 and frame.shape == (144, 192, 3)
    np.testing.assert_array_equal(frame, ref.render([2])[0])
    envs = gymnasium.make_vec("lit_dmash/DI-Perm-v0", num_envs=3, split="eval_out", render_mode="rgb_array")
    envs.reset(seed=1)
    envs.step(np.array([[0.5, -1.0]] * 3, dtype=np.float32))
    frames = envs.render()
    assert len(frames) == 3
    np.testing.assert_array_equal(np.stack(frames), ref.render())


@pytest.fixture
def gl(monkeypatch):
    """Let the renderer pick its OpenGL backend (conftest sets MUJOCO_GL=disable for the other tests)."""
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    render.gl_backend.cache_clear()
    try:
        render.gl_backend()
    except render.RenderError as err:
        pytest.skip(f"no OpenGL backend here: {err}")
    yield
    render.gl_backend.cache_clear()


@pytest.mark.integration
@pytest.mark.parametrize("task", ["cartpole", "hopper_gym"])
def test_mujoco_task_renders_with_check_env(gl, task):
    env = gymnasium.make(gym_id(task), split="train", context=5, horizon=5, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # the render check too: every declared render mode
    assert [str(w.message) for w in caught if not INFINITE_BOX.search(str(w.message))] == []
    env.reset(seed=0)
    first = env.render()
    for _ in range(3):
        env.step(env.action_space.high)
    assert first.dtype == np.uint8 and first.shape == (144, 192, 3) and first.std() > 0
    assert not np.array_equal(first, env.render())
    env.close()


def test_evaluate_zero_shot_is_our_evaluation_protocol():
    """A real agent (concat, which reads info["context"]) scores exactly what `ContextualSAC.evaluate` gives.

    On ODE, whose banded reward is dense, so the returns differ between contexts and episodes.
    """
    module = tiny_module(method="concat", task="ode", seeds=(4,))
    ours = module.evaluate("eval_out", episodes=3)["returns"][0].numpy()  # [contexts, episodes]

    @torch.no_grad()
    def policy(obs: np.ndarray, info: dict) -> np.ndarray:
        obs_t, context = torch.from_numpy(obs)[None], torch.from_numpy(info["context"])[None]
        return module.agent.act(obs_t, context=context, deterministic=True)[0].numpy()

    result = evaluate_zero_shot(
        "lit_dmash/ODE-v0", policy, "eval_out", episodes=3, seed=4, window=3, contexts_per_split=2, horizon=6
    )
    assert result.returns.shape == (2, 3) and ours.shape == (2, 3)
    assert len(np.unique(ours)) > 1  # not a trivially equal all-zero table
    np.testing.assert_array_equal(result.returns, ours)
    assert result.aer == pytest.approx(float(ours.mean(axis=1).mean()))
    np.testing.assert_array_equal(result.contexts, split_contexts("ode", "eval_out", 2, 4).float().numpy())
    skipped = evaluate_zero_shot(
        "lit_dmash/ODE-v0", policy, "eval_out", episodes=3, seed=4, warm_up=False, contexts_per_split=2, horizon=6
    )
    np.testing.assert_array_equal(skipped.returns, module.evaluate("eval_out", 3, warm_up=False)["returns"][0])


def test_evaluate_zero_shot_checks_its_arguments():
    with pytest.raises(ConfigError, match=r"^invalid env_id='CartPole-v1': expected one of \['lit_dmash/DI-v0'"):
        evaluate_zero_shot("CartPole-v1", lambda obs, info: obs, "eval_in")
    with pytest.raises(ConfigError, match=r"^invalid window=7: expected an integer in 0..6 \(the horizon\)$"):
        evaluate_zero_shot("lit_dmash/DI-v0", lambda obs, info: obs[:, :2], "eval_in", window=7, horizon=6)


def readme_example() -> list[str]:
    """The code lines of the README's Stable-Baselines3 example (comments dropped)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use the benchmark from another library", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_readme_example_is_the_code_the_example_module_runs():
    from lit_dmash.gym import sb3_example

    source = {line.split("  #")[0].strip() for line in Path(sb3_example.__file__).read_text().splitlines()}
    lines = readme_example()
    assert lines[0] == "import gymnasium" and len(lines) >= 8
    parameters = [line for line in lines if line not in source]
    assert parameters == ['env_id, steps, episodes, seed = "lit_dmash/DI-v0", 200_000, 10, 0'], parameters


@pytest.mark.integration
def test_sb3_example_at_a_tiny_budget(capsys):
    pytest.importorskip("stable_baselines3", reason="the optional sb3 extra is not installed: pip install -e '.[sb3]'")
    from lit_dmash.gym.sb3_example import main

    aer = main(["--steps", "200", "--episodes", "1"])
    assert set(aer) == {"eval_in", "eval_out"}
    assert all(0.0 <= value <= 100.0 for value in aer.values())  # DI pays at most 1 per step, 100 steps
    assert '"aer": {"eval_in"' in capsys.readouterr().out
