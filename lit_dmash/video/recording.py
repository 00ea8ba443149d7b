"""Recording: the authors' evaluation of one split, with seed 0's scored episode filmed in chosen contexts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch

from lit_dmash.errors import ConfigError
from lit_dmash.experience.rollout import SeedEnvs, StepResult, run_episodes
from lit_dmash.render import RenderError

BINARY_WORDS = {"action_factor": ("inverted", "normal"), "action_order": ("swapped", "identity")}


@dataclass
class Recording:
    """One split's scored episode, seed 0, the chosen sub-envs."""

    split: str
    seed: int
    indices: list[int]
    frames: np.ndarray  # [T, n, H, W, 3] uint8, after each kept scored step
    returns: np.ndarray  # [T, n] running return after that step
    steps: list[int]  # [T] the step (1-based) each frame follows
    labels: list[str]  # [n] the contexts, in words


class FrameRecorder(SeedEnvs):
    """`SeedEnvs` that renders seed 0's sub-envs `indices` after each step, keeping the episode since the last reset.

    `run_episodes` resets right before its scored episode, so when it returns (one episode)
    the frames are exactly that episode's; the warm-up's frames were drawn and dropped (simpler
    than knowing the protocol's reset pattern here; ~K / horizon extra drawing).
    """

    def __init__(self, envs: SeedEnvs, indices: Sequence[int], width: int, height: int, frame_skip: int = 1) -> None:
        super().__init__(envs.envs)
        self.indices, self.width, self.height, self.frame_skip = list(indices), width, height, frame_skip
        self._clear()

    def _clear(self) -> None:
        self.frames: list[np.ndarray] = []
        self.returns: list[np.ndarray] = []
        self.steps: list[int] = []
        self._total = np.zeros(len(self.indices))
        self._t = 0
        self.contexts: torch.Tensor | None = None  # [n, c] of the filmed sub-envs, as the last step reported

    def reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._clear()
        return super().reset()

    def step(self, action: torch.Tensor) -> StepResult:
        result = super().step(action)
        self._total += result.reward[0, self.indices].double().cpu().numpy()
        self._t += 1
        self.contexts = result.context[0, self.indices].cpu()
        if (self._t - 1) % self.frame_skip == 0 or result.done[0].any():
            self.frames.append(self.envs[0].render(self.indices, width=self.width, height=self.height))
            self.returns.append(self._total.copy())
            self.steps.append(self._t)
        return result


def record_split(
    pl_module: L.LightningModule, split: str, count: int, width: int, height: int, frame_skip: int = 1
) -> Recording:
    """Run the authors' evaluation on `split` and keep seed 0's scored episode in `count` contexts."""
    envs = pl_module.make_envs(split, num_envs=pl_module.env_cfg.contexts_per_split)
    try:
        env = envs.envs[0]
        indices = choose_contexts(env, count, pl_module.task_spec)
        recorder = FrameRecorder(envs, indices, width, height, frame_skip)
        run_episodes(pl_module.agent, recorder, pl_module.spec.window, 1, pl_module.protocol.warm_up)
    finally:
        envs.close()
    names = context_names(env, recorder.contexts.shape[-1])
    return Recording(
        split=split,
        seed=pl_module.seeds[0],
        indices=indices,
        frames=np.stack(recorder.frames),
        returns=np.stack(recorder.returns),
        steps=recorder.steps,
        labels=[describe_context(row.tolist(), names) for row in recorder.contexts],
    )


def check_renders(pl_module: L.LightningModule, width: int, height: int) -> None:
    """Draw one frame of a 1-sub-env env of the task, or raise a one-line `ConfigError` saying why not."""
    envs = pl_module.make_envs(pl_module.split_names[0], num_envs=1)
    try:
        env = envs.envs[0]
        if not callable(getattr(env, "render", None)):
            raise ConfigError("PolicyVideo", pl_module.env_cfg.name, "this env cannot render (no render method)")
        env.reset()
        try:
            env.render([0], width=width, height=height)
        except (RenderError, ValueError) as err:  # no OpenGL backend, or a frame bigger than the model allows
            raise ConfigError("PolicyVideo", pl_module.env_cfg.name, str(err)) from err
    finally:
        envs.close()


def choose_contexts(env, count: int, task_spec=None) -> list[int]:
    """`count` sub-envs to film: binary-key groups in turn (inverted first), evenly spread inside each.

    A paper env's sub-env i runs context i (its `contexts`, sorted); an env that draws contexts
    per episode (the `*_signs` envs) gets its first `count` sub-envs.
    """
    num_envs = int(env.batch_size[0])
    contexts = getattr(env, "contexts", None)
    if contexts is None:
        return list(range(min(count, num_envs)))
    contexts = contexts[: min(num_envs, contexts.shape[0])]
    names = list(getattr(env, "context_names", []))
    binary = [names.index(key) for key in (task_spec.binary_keys if task_spec is not None else []) if key in names]
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, row in enumerate(contexts.tolist()):
        groups.setdefault(tuple(row[j] for j in binary), []).append(i)
    ordered = [groups[key] for key in sorted(groups)]  # -1 (inverted, swapped) before +1
    quotas = [len(range(g, count, len(ordered))) for g in range(len(ordered))]
    chosen = []
    for rows, quota in zip(ordered, quotas, strict=True):
        picks = np.linspace(0, len(rows) - 1, min(quota, len(rows))).round().astype(int)
        chosen += [rows[p] for p in sorted(set(picks.tolist()))]
    return sorted(chosen)


def context_names(env, dim: int) -> list[str]:
    names = list(getattr(env, "context_names", []) or [])
    return names if len(names) == dim else [f"c{j}" for j in range(dim)]


def describe_context(values: Sequence[float], names: Sequence[str]) -> str:
    """A context in words: `mass=0.5, inverted`; binary keys by what they do."""
    parts = []
    for name, value in zip(names, values, strict=True):
        if name in BINARY_WORDS:
            parts.append(BINARY_WORDS[name][0 if value < 0 else 1])
        else:
            parts.append(f"{name}={value:.3g}")
    return ", ".join(parts)
