"""The paper's MuJoCo tasks, batched: fixed contexts per sub-env, the authors' action factors.

dm_control tasks (`dmc_tasks.py`) are built per sub-env from the context-edited XML. The gymnasium
tasks are the authors' `dmash/Walker2d-v5` and `dmash/Hopper-v5`: gymnasium's own Walker2d-v5 /
Hopper-v5 with `terminate_when_unhealthy=False` (the healthy bonus is still paid only while
healthy), `model.opt.gravity = (0, 0, -g)` and `actuator_gear *= actuator_strength` set after
construction (their copies differ from gymnasium 1.4's v5 source only in these lines and an
unused `swap_lr`). No task terminates; episodes end by truncation at the horizon.

Actions: `action_factor` multiplies the whole action vector (the authors' `before_step`) and
`action_order = -1` swaps the two actions (reacher_perm); the result goes to the simulator
unclipped, as in the authors' stack (MuJoCo clamps the controls to their range, gymnasium's
control cost uses the raw action).

Reset streams: `"shared"` seeds every sub-env's task generator with the run seed (the authors'
setting: identical initial-state streams) and, as their `make_env` does, resets each once at
construction, so the first episode starts from the stream's second draw; `"independent"` seeds
sub-env i with `child_seed(seed, i)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lit_dmash.envs.batched_sims import BatchedSimEnv
from lit_dmash.envs.simulators import GymSimulator, Simulator, child_seed
from lit_dmash.envs.task_contexts import SPLITS, TaskSpec

GYM_TASKS = {"walker_gym": "Walker2d-v5", "hopper_gym": "Hopper-v5"}


def make_gym_simulator(task: str, context: dict[str, float], seed: int) -> GymSimulator:
    """gymnasium's env of `task` with the context's gravity and actuator strength."""
    sim = GymSimulator.from_id(GYM_TASKS[task], seed, terminate_when_unhealthy=False)
    sim.model.opt.gravity[:] = (0.0, 0.0, -context["gravity"])
    sim.model.actuator_gear[:] *= context["actuator_strength"]
    return sim


def make_simulator(task: str, context: dict[str, float], seed: int) -> Simulator:
    if task in GYM_TASKS:
        return make_gym_simulator(task, context, seed)
    from lit_dmash.envs.dmc_tasks import make_dmc_simulator

    return make_dmc_simulator(task, context, seed)


class PaperMujocoEnv(BatchedSimEnv):
    """A paper MuJoCo task over `num_envs` simulations; sub-env i keeps context i % C."""

    def __init__(
        self,
        task: TaskSpec,
        contexts: torch.Tensor,
        split: str,
        num_envs: int,
        seed: int,
        device: torch.device | str = "cpu",
        *,
        horizon: int | None = None,
        reset_streams: str = "shared",
    ) -> None:
        self.task, self.split, self.seed, self.reset_streams = task, split, seed, reset_streams
        self.task_name = task.name
        self.context_names, self.split_names = task.context_names, list(SPLITS)
        self.contexts = contexts.to(torch.float64)
        rows = [i % contexts.shape[0] for i in range(num_envs)]
        values = [dict(zip(self.context_names, self.contexts[r].tolist(), strict=True)) for r in rows]
        sims = [
            make_simulator(task.name, context, seed if reset_streams == "shared" else child_seed(seed, i))
            for i, context in enumerate(values)
        ]
        super().__init__(sims, len(self.context_names), task.horizon if horizon is None else horizon, device)
        self._context = self.contexts[rows].float()
        self._factor = np.array([[c.get("action_factor", 1.0)] for c in values], dtype=np.float32)
        self._swap = np.array([c.get("action_order", 1.0) < 0 for c in values])
        self._has_factor = "action_factor" in self.context_names
        self._has_swap = bool(self._swap.any())
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Put every simulation where a fresh build seeded `seed` starts, without recompiling a model.

        Each task generator is reseeded (the run seed, or `child_seed(seed, i)` with independent
        streams) and, as the authors' make_env does, reset once. `lit_dmash.gym` calls this on
        `reset(seed=...)`: a dm_control model compiles in ~0.15 s, a reseed costs one reset.
        """
        self.seed = seed
        for i, sim in enumerate(self._sims):
            sim.reseed(seed if self.reset_streams == "shared" else child_seed(seed, i))
            self._obs[i] = sim.reset()
        self._t[:] = 0
        self.sim_failures = 0

    def _sim_actions(self, action: np.ndarray) -> np.ndarray:
        action = action.astype(np.float32, copy=False)
        if self._has_swap:
            action = np.where(self._swap[:, None], action[:, ::-1], action)
        if self._has_factor:
            action = action * self._factor
        return action

    def env_state(self) -> dict[str, Any]:
        """Everything needed to continue the running episodes exactly (plain tensors and ints)."""
        per_sim = [sim.get_state() for sim in self._sims]  # one row per sub-env in every tensor
        sims = {f"sim_{key}": torch.from_numpy(np.stack([s[key] for s in per_sim])) for key in per_sim[0]}
        return {
            **sims,
            "t": torch.from_numpy(self._t.copy()),
            "obs": torch.from_numpy(self._obs.copy()),
            "failures": self.sim_failures,
        }

    def load_env_state(self, state: dict[str, Any]) -> None:
        sims = {key.removeprefix("sim_"): value for key, value in state.items() if key.startswith("sim_")}
        for i, sim in enumerate(self._sims):
            sim.set_state({key: value[i].numpy() for key, value in sims.items()})
        self._t[:] = state["t"].numpy()
        self._obs[:] = state["obs"].numpy()
        self.sim_failures = int(state["failures"])
