"""The LightningModule: SAC on TorchRL, one training step = collect, store, update.

The module says *what* a step does; the Trainer says *how* (devices, loggers, checkpoints).
Each rank owns its own collector, env seed and replay buffer (built in `on_fit_start`, after
the module is on its device); DDP averages the gradients of the one backward per update.

Counters (`env_frames`, `updates`, `episodes`) are ours, not Lightning's: schedules, logging and
stopping are driven by them. Metrics are logged against env frames (Lightning uses a logged
`"step"` value as the x-axis); `train/updates` gives the updates axis.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import EnvBase, RewardSum, TransformedEnv

from lit_dmash.agents.context import ContextModel
from lit_dmash.agents.direct_sac import DirectSACLoss
from lit_dmash.agents.sac import (
    NetSpec,
    make_actor,
    make_optimizer,
    make_qvalue,
    make_sac_loss,
    make_target_updater,
    policy_head,
)
from lit_dmash.config import CollectorConfig, ContextConfig, EnvConfig, SACConfig
from lit_dmash.envs import context_space, make_env
from lit_dmash.envs.history import TransitionHistory
from lit_dmash.errors import ConfigError, check_choice
from lit_dmash.evaluation import evaluate_policy
from lit_dmash.memory import check_buffer_fits, transition_bytes
from lit_dmash.methods import get_method
from lit_dmash.run_state import apply_training_state, check_compatible, training_state


class NonFiniteError(RuntimeError):
    """Training met a non-finite observation, reward, loss or gradient (with on_nonfinite=stop)."""


class ContextualSAC(L.LightningModule):
    """SAC agent for latent-context envs; `method` picks what the networks see and how.

    Args:
        method: Which method to train: `dr`, `oracle`, `dma`, `dma_star`, `dmash`, or an ablation
            (`dmash_nomask`, `dmash_nonorm`, `dmash_separate`, `dmash_rlgrad`); see `lit_dmash.methods`.
        env: Environment, training split and number of batched sub-envs.
        collector: Frames per step, training budget, warm-up and replay capacity.
        sac: Networks, SAC loss, optimiser and update schedule.
        context: Encoder, masking, hypernetwork and dynamics model of the context-inference methods.
        seed: Seeds network initialisation and, offset per rank, the training envs (from the CLI:
            linked to `seed_everything`).
        on_nonfinite: What a non-finite observation, reward, loss or gradient does: `stop` (raise
            `NonFiniteError`; the `RunCheckpoint` callback saves the last good state) or `skip`
            (drop that batch or update and count it in `train/nonfinite_skipped`).
        eval_max_steps: Step cap of one evaluation episode (an error if an episode runs longer).
    """

    def __init__(
        self,
        method: str = "dr",
        env: EnvConfig = EnvConfig(),
        collector: CollectorConfig = CollectorConfig(),
        sac: SACConfig = SACConfig(),
        context: ContextConfig = ContextConfig(),
        seed: int = 0,
        eval_max_steps: int = 1000,
        on_nonfinite: str = "stop",
    ) -> None:
        # Dataclass defaults make the CLI expose every field (`--model.sac.gamma`); copies keep
        # one run's config from leaking into another's through a shared default instance.
        env, collector, sac, context = (copy.deepcopy(c) for c in (env, collector, sac, context))
        # Validate everything before building anything: bad input fails in the first second.
        self.method = get_method(method)
        env.validate()
        collector.validate(env.num_envs)
        sac.validate()
        context.validate(sac.hidden_dims)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError("seed", seed, "expected an integer (set it with seed_everything)")
        check_choice("on_nonfinite", on_nonfinite, ("stop", "skip"))
        if not isinstance(eval_max_steps, int) or eval_max_steps < 1:
            raise ConfigError("eval_max_steps", eval_max_steps, "expected an integer >= 1")

        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.env_cfg, self.collector_cfg, self.sac_cfg, self.context_cfg = env, collector, sac, context
        self.seed, self.eval_max_steps, self.on_nonfinite = seed, eval_max_steps, on_nonfinite
        L.seed_everything(seed, verbose=False)

        self.context_space = context_space(env.name, env.context_file)
        probe = make_env(env.name, env.split, num_envs=1, seed=seed, context_file=env.context_file, horizon=env.horizon)
        horizon = getattr(probe, "horizon", None)  # the episode length in use (the env's default or env.horizon)
        if horizon is not None and horizon > eval_max_steps:
            raise ConfigError("eval_max_steps", eval_max_steps, f"expected >= the episode length {horizon}")
        self.action_spec = probe.action_spec[0]
        self.obs_dim = probe.observation_spec["observation"].shape[-1]
        self.context_dim = probe.observation_spec["context"].shape[-1]
        action_dim = self.action_spec.shape[-1]

        self.context_model = (
            ContextModel(self.method, self.obs_dim, action_dim, context, sac.hidden_dims)
            if self.method.infers_context
            else None
        )
        spec = self._net_spec()
        self.actor = make_actor(spec, self.action_spec)
        qvalue = make_qvalue(spec, action_dim)
        self.loss_module = make_sac_loss(self.actor, qvalue, self.action_spec, sac)
        self.target_updater = make_target_updater(self.loss_module, sac.tau)
        # SACLoss owns every parameter either way; `direct` only evaluates its losses faster.
        self.direct_loss = (
            DirectSACLoss(self.loss_module, policy_head(self.actor), spec.input_keys, qvalue.module, self.action_spec)
            if sac.loss_impl == "direct"
            else None
        )
        # Acting: infer the conditioning from the env's transition window, then act on it.
        self.policy: TensorDictModuleBase = (
            TensorDictSequential(self.context_model.policy_module(), self.actor)
            if self.context_model is not None
            else self.actor
        )
        # Refuse a replay buffer that cannot fit, before anything is allocated.
        self.bytes_per_transition = transition_bytes(self.make_env(env.split, 1, seed), self.policy, self.unstored_keys)
        check_buffer_fits(collector.buffer_size, self.bytes_per_transition)

        # Masking probabilities used by updates (MaskingSchedule moves p_mask over training).
        self.p_mask = context.p_mask if self.method.mask else 0.0
        self.p_mask_feature = context.p_mask_feature if self.method.mask else 0.0

        self.env_frames = 0
        self.updates = 0
        self.episodes = 0
        self.last_episode_return = float("nan")
        self._unlogged_returns: list[tuple[float, int]] = []  # (sum, count) of returns since the last log
        self.nonfinite_skipped = 0
        self.last_losses: dict[str, float] = {}  # of the latest update, for callbacks
        # Cumulative, for throughput measurements: collecting + storing, and sampling + updates.
        self.timing = {"collect_s": 0.0, "update_s": 0.0}
        self._resume: dict[str, Any] | None = None  # state from a checkpoint, applied in on_fit_start
        self.env_poisoned = False  # a non-finite step was collected: do not checkpoint the env state
        # Built per rank in on_fit_start; plain attributes, so Lightning never moves or saves them.
        self.collector: Collector | None = None
        self._batches: Iterator[TensorDictBase] | None = None
        self.replay_buffer: TensorDictReplayBuffer | None = None

    # ----------------------------------------------------------------------------- building
    def _net_spec(self) -> NetSpec:
        """What the actor and critics read: observation, plus context/`z` (concat) or an adapter."""
        method, cfg = self.method, self.context_cfg
        input_dim = self.obs_dim
        if method.context == "true":
            input_dim += self.context_dim
        elif method.infers_context and not method.uses_adapter:
            input_dim += cfg.z_dim
        adapter = self.context_model.adapter_shape if self.context_model is not None else None
        return NetSpec(
            input_keys=method.input_keys,
            input_dim=input_dim,
            hidden_dims=tuple(self.sac_cfg.hidden_dims),
            adapter=adapter,
            adapter_layer=cfg.adapter_layer,
            adapter_source="none" if adapter is None else ("params" if method.shared_hypernet else "z"),
            z_dim=cfg.z_dim,
            hypernet_hidden=tuple(cfg.hypernet_hidden),
        )

    def make_env(self, split: str, num_envs: int, seed: int) -> EnvBase:
        """An env of the training kind on `split`, with the transforms the policy expects."""
        base = make_env(
            self.env_cfg.name,
            split,
            num_envs=num_envs,
            seed=seed,
            device=self.device,
            context_file=self.env_cfg.context_file,
            horizon=self.env_cfg.horizon,
        )
        env = TransformedEnv(base, RewardSum())
        if self.context_model is not None:
            env.append_transform(
                TransitionHistory(self.context_cfg.history_len, self.obs_dim, self.action_spec.shape[-1])
            )
        return env

    @property
    def sim_failures(self) -> int:
        """Training episodes the simulator ended early by instability (MuJoCo envs count them)."""
        env = getattr(self.collector, "env", None)
        return getattr(getattr(env, "base_env", env), "sim_failures", 0)

    @property
    def split_names(self) -> list[str]:
        return self.context_space.split_names

    @property
    def num_actuators(self) -> int:
        return self.context_space.num_actuators

    @property
    def unstored_keys(self) -> list:
        """Collected keys the replay buffer does not keep: the update recomputes them.

        The policy's outputs, the acting-time conditioning, and the window at t+1 (derived from
        the window at t by `shift_window`). For `dmash` on DI-Friction (K=16) this cuts a stored
        transition from 1,922 to 746 bytes (`bytes_per_transition`, the collector's trajectory id included).
        """
        keys: list = ["loc", "scale"]
        if self.context_model is not None:
            keys += [self.method.conditioning_key, ("next", "history"), ("next", "history_mask")]
        return keys

    def on_fit_start(self) -> None:
        # Offset by the frames already seen, so a resumed multi-process run draws fresh contexts
        # (a single-process resume restores the env's generator exactly, below).
        rank_seed = self.seed + 10_000 * self.global_rank + self.env_frames
        env = self.make_env(self.env_cfg.split, self.env_cfg.num_envs, rank_seed)
        self.collector = Collector(
            env,
            self.policy,
            frames_per_batch=self.collector_cfg.frames_per_batch,
            total_frames=-1,
            init_random_frames=max(0, self.collector_cfg.init_random_frames - self.env_frames),
            device=self.device,
            storing_device="cpu",
            auto_register_policy_transforms=False,  # our policies need no env-side transforms
        )
        self.collector.set_seed(rank_seed)
        self.replay_buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(self.collector_cfg.buffer_size, device="cpu"),
            batch_size=self.sac_cfg.batch_size,
        )
        if self._resume is not None:
            apply_training_state(self, self._resume)
            self._resume = None
        self._batches = iter(self.collector)

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.shutdown()  # drops its env: a checkpoint saved after fit must not reach for it
            self.collector, self._batches = None, None

    def train_dataloader(self) -> Iterator[int]:
        # Data comes from the collector, not a dataset: Lightning only needs something to iterate.
        return itertools.repeat(0)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        dynamics_params = list(self.context_model.parameters()) if self.context_model is not None else None
        return make_optimizer(self.loss_module, self.sac_cfg, dynamics_params, self.context_cfg.lr_dynamics)

    # ----------------------------------------------------------------------------- training
    def training_step(self, batch: Any, batch_idx: int) -> None:
        t0 = time.perf_counter()
        data = next(self._batches)
        updates_before = self.updates
        metrics: dict[str, float] = {}
        stored = self.store(data)
        t1 = time.perf_counter()
        if stored and self.env_frames >= self.learning_starts:
            optimizer = self.optimizers()
            for _ in range(self.sac_cfg.utd):
                sample = self.replay_buffer.sample().to(self.device)
                metrics = self.update(sample, optimizer, self.manual_backward) or metrics
        t2 = time.perf_counter()

        self.timing["collect_s"] += t1 - t0
        self.timing["update_s"] += t2 - t1
        if self.env_frames >= self.collector_cfg.total_frames:
            self.trainer.should_stop = True  # before logging: the last step is always logged
        self._log_step(metrics, t1 - t0, t2 - t1, n_updates=self.updates - updates_before)

    @property
    def learning_starts(self) -> int:
        """Env frames before the first update: the random warm-up, and at least one full batch."""
        return max(self.collector_cfg.init_random_frames, self.sac_cfg.batch_size)

    def store(self, data: TensorDictBase) -> bool:
        """Count, check and store one collected batch; False if it was dropped as non-finite."""
        finite = self._finite_or_handled(data, "observation or reward in collected data")
        self.env_frames += data.numel()  # a dropped batch was still collected: it counts against the budget
        if finite:
            self._record_episodes(data)
            if self.context_model is not None:
                self.context_model.update_normalizer(data)
            self.replay_buffer.extend(data.exclude(*self.unstored_keys).reshape(-1))
        return finite

    def _finite_or_handled(self, data: TensorDictBase, what: str) -> bool:
        """True if `data` is finite; otherwise stop (raise) or count a skip, per `on_nonfinite`."""
        keys = ["observation", ("next", "observation"), ("next", "reward")]
        if all(torch.isfinite(data[key]).all() for key in keys):
            return True
        self.env_poisoned = True  # its episodes in flight carry the bad values
        return self._nonfinite(what)

    def _nonfinite(self, what: str) -> bool:
        if self.on_nonfinite == "skip":
            self.nonfinite_skipped += 1
            return False
        raise NonFiniteError(
            f"non-finite {what} at update {self.updates}, env frame {self.env_frames} "
            f"(on_nonfinite=stop; model.on_nonfinite=skip drops such batches instead)"
        )

    def compute_losses(self, sample: TensorDictBase) -> dict[str, torch.Tensor]:
        """Dynamics loss first (it writes the detached conditioning into `sample`), then SAC's."""
        dynamics = None
        if self.context_model is not None:
            dynamics = self.context_model.prepare_batch(sample, self.p_mask, self.p_mask_feature)[0]
        losses = self.direct_loss(sample) if self.direct_loss is not None else dict(self.loss_module(sample).items())
        if dynamics is not None:
            losses["loss_dynamics"] = dynamics
        return losses

    def update(
        self,
        sample: TensorDictBase,
        optimizer: torch.optim.Optimizer,
        backward: Callable[[torch.Tensor], None],
    ) -> dict[str, float]:
        """One update of every part: one backward of the summed losses, one step, a target update.

        `training_step` passes Lightning's optimizer wrapper and `manual_backward` (precision,
        DDP and the backward/optimizer hooks of callbacks); `bench/throughput.py` passes a plain
        Adam and `Tensor.backward` to measure what Lightning costs. Non-finite losses or gradients
        are caught before the optimiser steps, so the weights in memory (and in the checkpoint
        `RunCheckpoint` then writes) are the last good ones. Returns no metrics when the update
        was skipped.
        """
        losses = self.compute_losses(sample)
        bad = [key for key, value in losses.items() if key.startswith("loss_") and not torch.isfinite(value).all()]
        if bad:
            self._nonfinite(f"{', '.join(bad)}")
            return {}
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        optimizer.zero_grad(set_to_none=True)
        backward(total)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not torch.isfinite(torch.stack([g.norm() for g in grads])).all():
            optimizer.zero_grad(set_to_none=True)
            self._nonfinite("gradient")
            return {}
        optimizer.step()
        self.target_updater.step()
        self.updates += 1
        self.last_losses = {key: value.item() for key, value in losses.items()}
        return self.last_losses

    def _record_episodes(self, data: TensorDictBase) -> None:
        """Count the episodes that ended in `data` and keep their returns until the next log."""
        done = data["next", "done"].squeeze(-1)
        if not done.any():
            return
        returns = data["next", "episode_reward"][done]
        self.episodes += returns.numel()
        self.last_episode_return = returns.mean().item()
        self._unlogged_returns.append((returns.sum().item(), returns.numel()))

    def _log_step(self, metrics: dict[str, float], collect_s: float, update_s: float, n_updates: int) -> None:
        """Log this step's metrics, on the steps Lightning writes (every `log_every_n_steps`).

        `LightningModule.log` costs ~1 ms a call here (its result collection is moved and
        updated per call), more than a whole update at small sizes; values logged on a step
        Lightning does not write are dropped anyway. `should_update_logs` is Lightning's own
        rule (a protected connector: there is no public accessor in 2.6). Episode returns are
        accumulated in between, so the logged `train/episode_return` averages every episode
        that ended since the last log.
        """
        if not self.trainer._logger_connector.should_update_logs:
            return
        log: dict[str, float] = {
            "step": float(self.env_frames),  # x-axis of every logged metric: env frames
            "train/env_frames": float(self.env_frames),
            "train/updates": float(self.updates),
            "train/episodes": float(self.episodes),
            "train/nonfinite_skipped": float(self.nonfinite_skipped),
            "train/sim_failures": float(self.sim_failures),
            "time/collect_s": collect_s,
            "time/env_steps_per_s": self.collector_cfg.frames_per_batch / max(collect_s, 1e-9),
        }
        if self._unlogged_returns:
            # Straight to the loggers: a value in Lightning's result collection is written again at
            # every later log step until overwritten (one endless epoch), which would repeat a stale return.
            total, count = map(sum, zip(*self._unlogged_returns, strict=True))
            for logger in self.loggers:
                logger.log_metrics({"train/episode_return": total / count}, step=self.env_frames)
            self._unlogged_returns.clear()
        if n_updates:
            log["time/update_s"] = update_s
            log["time/updates_per_s"] = n_updates / max(update_s, 1e-9)
            log.update({f"train/{key}": value for key, value in metrics.items()})
            if self.method.mask:
                log["train/p_mask"] = self.p_mask
        self.log_dict(log, on_step=True, on_epoch=False, batch_size=1)
        self.log("env_steps", float(self.env_frames), prog_bar=True, logger=False, batch_size=1)
        self.log("return", self.last_episode_return, prog_bar=True, logger=False, batch_size=1)

    # ----------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lit_dmash"] = training_state(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lit_dmash")
        check_compatible(self, state)  # before Lightning loads weights of the wrong shape
        self.env_frames, self.updates = state["env_frames"], state["updates"]
        self.episodes, self.nonfinite_skipped = state["episodes"], state.get("nonfinite_skipped", 0)
        self._resume = state  # the rest needs the collector and buffer: applied in on_fit_start

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, split: str, episodes: int, seed: int) -> torch.Tensor:
        """Zero-shot returns of the deterministic policy, one episode per sub-env: `[episodes]`."""
        env = self.make_env(split, episodes, seed)
        try:
            return evaluate_policy(env, self.policy, self.eval_max_steps)
        finally:
            env.close()
