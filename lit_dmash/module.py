"""The LightningModule: wires the agent and its experience to the Trainer, loggers and callbacks.

The module says *what* a step does: `steps_per_batch` times, one vector step of collection
(`Collector.step`) and, once learning has started, one update (`lit_dmash.agent.update`); the
Trainer says *how* (devices, loggers, checkpoints). Everything that learns is the plain
`Agent` (`self.agent`); everything that collects is the `Collector` (built per rank in
`on_fit_start`). Several seeds (`seeds`) train in one process as a batch: every tensor of the
agent and the collector carries a leading seed dim, and each seed's evaluations go to its own
folder.

Interface for callbacks (read these, never private attributes): `agent`, `collector`,
`seeds`, `env_frames`, `updates`, `split_names`, `evaluate(split, episodes)`,
`make_envs(split, num_envs, seed_offset)`, `sample_batch()`, `untouched_randomness()` (wrap
anything that samples or embeds, so the run stays what it would be without the callback),
`set_p_mask(p)`, `task_spec`, `method`, `spec`, `protocol`, `env_cfg`, `last_metrics`,
`seed_dir(seed)`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lit_dmash import build, compat
from lit_dmash.agent.rollback import Rollback
from lit_dmash.agent.spec import AgentSpec
from lit_dmash.agent.update import EAGER, Batch, Losses, NonFiniteError, Optimizers
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig, check_context_applies
from lit_dmash.errors import ConfigError, check_choice
from lit_dmash.experience.collector import Collector
from lit_dmash.experience.evaluation import evaluate_splits
from lit_dmash.experience.rollout import SeedEnvs
from lit_dmash.memory import check_buffer_fits
from lit_dmash.methods import Method, get_method
from lit_dmash.names import seed_folder
from lit_dmash.run_state import check_compatible, training_state
from lit_dmash.step_logging import log_step


def resolve_seeds(seed: int, seeds: int | Sequence[int] | None) -> list[int]:
    """`seeds`: None (just `seed`), a count N (`seed .. seed + N - 1`) or an explicit list."""
    if seeds is None:
        return [seed]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError("seeds", seeds, "expected a count >= 1 or a non-empty list of integers")
        return list(range(seed, seed + seeds))
    values = list(seeds)
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
        raise ConfigError("seeds", seeds, "expected a count >= 1 or a non-empty list of integers")
    if len(set(values)) != len(values):
        raise ConfigError("seeds", seeds, "expected distinct seeds")
    return values


def validate_arguments(
    method: Method,
    env: EnvConfig,
    protocol: ProtocolConfig,
    sac: SACConfig,
    context: ContextConfig,
    seed: int,
    seeds: int | Sequence[int] | None,
    on_nonfinite: str,
    test_episodes: int,
) -> list[int]:
    """Every constructor argument checked before anything is built (one line per bad field); the seeds."""
    env.validate()
    protocol.validate()
    sac.validate(env.num_envs)
    context.validate()
    check_context_applies(method, context)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("seed", seed, "expected an integer (set it with seed_everything)")
    check_choice("on_nonfinite", on_nonfinite, ("stop", "skip"))
    if not isinstance(test_episodes, int) or isinstance(test_episodes, bool) or test_episodes < 1:
        raise ConfigError("test_episodes", test_episodes, "expected an integer >= 1")
    return resolve_seeds(seed, seeds)


class ContextualSAC(L.LightningModule):
    """SAC with (optionally) inferred contexts, the authors' protocol; `method` picks the arm.

    Args:
        method: `dr`, `concat`, `da`, `dma`, `dma_pearl`, `dma_star`, `dmash`, or an ablation
            (`dma_sh`, `dma_star_h`, `dma_star_h_rl`, `dmash_critic_grad`, `dmash_actor_grad`,
            `dmash_rl_grad`); see `lit_dmash.methods`.
        env: Task, sub-envs per seed, contexts per split.
        protocol: Budget, random warm-up, replay size, context warm-up.
        sac: Networks, SAC settings and learning rates.
        context: Encoder, masking, dynamics model and hypernetwork (context methods). A field the
            arm never reads (e.g. `p_mask` for `dr`, `kl_weight` without the `plstm` encoder) is
            refused, naming the field and the method; `window` (the warm-up length) applies to all.
        seed: The run's seed (from the CLI: linked to `seed_everything`).
        seeds: Train several seeds at once as a batch: a count N (seeds `seed .. seed + N - 1`)
            or a list. Each seed is the run it would be alone up to float rounding (bit for bit at test sizes);
            outputs go to `seed<k>/`.
        on_nonfinite: `stop` (raise; `RunCheckpoint` saves the last good state) or `skip` (abandon
            the update or the env step, count it in `train/nonfinite_skipped`; a failed MuJoCo
            simulation in `train/sim_failures`). Either way nothing non-finite or made up is stored.
            A simulation that fails during an evaluation always stops the run.
        replay_device: Where the replay lives: None = the training device.
        test_splits: Splits `python -m lit_dmash test` evaluates (default: every split of the task).
        test_episodes: Episodes per context in `test` (the paper: 10; the authors' code: 5).
        allow_protocol_change: Let `fit --ckpt_path` resume under changed `env.*`, `protocol.*`,
            `sac.*` or `context.*` values (refused by default, naming the fields; the budget
            `protocol.total_steps`, `steps_per_batch` and `compile` may always change).
    """

    def __init__(
        self,
        method: str = "dmash",
        env: EnvConfig = EnvConfig(),
        protocol: ProtocolConfig = ProtocolConfig(),
        sac: SACConfig = SACConfig(),
        context: ContextConfig = ContextConfig(),
        seed: int = 0,
        seeds: int | list[int] | None = None,
        on_nonfinite: str = "stop",
        replay_device: str | None = None,
        test_splits: list[str] | None = None,
        test_episodes: int = 10,
        allow_protocol_change: bool = False,
    ) -> None:
        # Copies: a dataclass default instance is shared between calls.
        env, protocol, sac, context = (copy.deepcopy(c) for c in (env, protocol, sac, context))
        self.method = get_method(method)
        seed_list = validate_arguments(
            self.method, env, protocol, sac, context, seed, seeds, on_nonfinite, test_episodes
        )
        super().__init__()
        self.automatic_optimization = False
        self.env_cfg, self.protocol, self.sac_cfg, self.context_cfg = env, protocol, sac, context
        self.seed, self.seeds, self.on_nonfinite, self.replay_device = seed, seed_list, on_nonfinite, replay_device
        self.test_splits, self.test_episodes = test_splits, test_episodes
        if not isinstance(allow_protocol_change, bool):
            raise ConfigError("allow_protocol_change", allow_protocol_change, "expected true or false")
        self.allow_protocol_change = allow_protocol_change
        configs = {"env": env, "protocol": protocol, "sac": sac, "context": context}
        hparams = {"method": method} | {name: dataclasses.asdict(c) for name, c in configs.items()}
        self.save_hyperparameters(hparams | {"seed": seed, "seeds": seed_list, "on_nonfinite": on_nonfinite})
        probe = build.make_envs(env, "train", [seed], num_envs=1)
        self.horizon = int(probe.horizon)
        self.split_names: list[str] = list(probe.envs[0].split_names)
        for split in test_splits or []:
            check_choice("test_splits", split, self.split_names)
        self.task_spec = getattr(probe.envs[0], "task", None)
        spec = build.agent_spec(method, env.name, probe, sac, context)
        if spec.window > self.horizon:
            raise ConfigError("context.window", spec.window, f"expected <= the episode length {self.horizon}")
        self.spec: AgentSpec = spec
        capacity = build.replay_capacity(protocol, self.horizon)
        check_buffer_fits(build.replay_bytes(spec, len(seed_list), env.num_envs, self.horizon, capacity))  # first
        self.agent = build.make_agent(spec, probe, seed_list)
        probe.close()
        self.env_frames = 0
        self.updates = 0
        self.nonfinite_skipped = 0
        self.sim_failures = 0  # failed simulations dropped with on_nonfinite=skip
        self.last_metrics: dict[str, float] = {}
        self.timing = {"collect_s": 0.0, "update_s": 0.0}
        self.collector: Collector | None = None  # per rank, built in on_fit_start; never saved by Lightning
        self.losses = EAGER if protocol.compile == "none" else Losses.compiled(protocol.compile)
        self._resume: dict[str, Any] | None = None
        self._rollback: Rollback | None = None  # built at the first update, when the optimisers exist

    # ------------------------------------------------------------------ building (lit_dmash.build)
    def make_envs(self, split: str, num_envs: int | None = None, seed_offset: int = 0) -> SeedEnvs:
        """One env per seed on `split` (sub-env i in context i), seeded by the seed (+ offset)."""
        return build.make_envs(self.env_cfg, split, self.seeds, num_envs, seed_offset)

    def on_fit_start(self) -> None:
        self._rollback = None  # a new fit has new optimisers
        rank_offset = 10_000 * self.global_rank  # each rank its own start states (and replay)
        envs = self.make_envs("train", seed_offset=rank_offset)
        device = torch.device(self.replay_device) if self.replay_device else self.device
        capacity = None
        if self._resume is not None:  # a resumed run keeps its replay, even if its budget changed
            capacity = self._resume["collector"]["replay"]["capacity"]
        replay = build.make_replay(self.agent, envs, self.protocol, capacity, device)
        self.collector = build.make_collector(self.agent, envs, replay, self.protocol)
        if self._resume is not None:
            self.collector.load_state_dict(self._resume["collector"])
            self._resume = None

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.envs.close()
            self.collector = None

    def train_dataloader(self) -> Iterator[int]:
        # Data comes from the collector, not a dataset: Lightning only needs something to iterate.
        return itertools.repeat(0)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return build.make_optimizers(self.agent).as_list()

    # ------------------------------------------------------------------ training
    @property
    def learning_step(self) -> int:
        """The authors' t of the next update: vector steps since learning started."""
        return self.collector.vector_steps - self.protocol.random_steps - 1

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """`protocol.steps_per_batch` iterations of the authors' loop (`build.train_iteration`), then logging."""
        if self.learning_step >= self.protocol.total_steps:  # a finished run resumed with the same budget
            self.trainer.should_stop = True
            return
        optimizers = Optimizers.by_name(self.optimizers())
        if self._rollback is None:
            self._rollback = Rollback(self.agent, optimizers.as_list())
        for _ in range(self.protocol.steps_per_batch):
            done = self._iterate(optimizers)
            if done.t >= self.protocol.total_steps:
                self.trainer.should_stop = True  # before logging: the last step is always logged
                break
            if done.metrics is not None and (self.updates - 1) % self.protocol.steps_per_batch == 0:
                break  # batches end at updates 1, 1 + n, 1 + 2n, ...: see ProtocolConfig.steps_per_batch
        log_step(self)

    def _iterate(self, optimizers: Optimizers) -> build.Iteration:
        """One `train_iteration`, its counters and timings, and a non-finite value's context in the error."""
        try:
            done = build.train_iteration(
                self.collector,
                self.agent,
                optimizers,
                self.sac_cfg.batch_size // self.env_cfg.num_envs,
                self.protocol.random_steps,
                skip_nonfinite=self.on_nonfinite == "skip",
                step_fn=self._step_fn,
                losses=self.losses,
                rollback=self._rollback,
            )
        except NonFiniteError as err:
            raise NonFiniteError(
                f"{err}, update {self.updates}, env frame {self.collector.frames} "
                f"(on_nonfinite=stop; model.on_nonfinite=skip drops such steps instead)"
            ) from err
        self.env_frames = self.collector.frames
        self.timing["collect_s"] += done.collect_s
        self.timing["update_s"] += done.update_s
        if done.sim_failures:
            self.sim_failures += done.sim_failures
        elif done.skipped:
            self.nonfinite_skipped += 1
        if done.metrics is not None:
            self.updates += 1
            self.last_metrics = done.metrics
        return done

    def sample_batch(self) -> Batch:
        """A training batch: `sac.batch_size // env.num_envs` windows from every sub-env, per seed."""
        per_env = self.sac_cfg.batch_size // self.env_cfg.num_envs
        return self.collector.replay.sample(per_env, windows=self.agent.encoder is not None)

    def _step_fn(self, optimizers, loss: torch.Tensor) -> None:
        """zero_grad, Lightning's backward (precision, hooks), gradient sync across ranks, step."""
        optimizers = list(optimizers)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        with compat.no_backward_sync(self):
            self.manual_backward(loss)
        for opt in optimizers:
            compat.all_reduce_grads(self, opt)
            opt.step()

    @contextlib.contextmanager
    def untouched_randomness(self) -> Iterator[None]:
        """For diagnostics: restore the agent's and the replay's random streams afterwards, so that a
        callback that samples batches or embeds windows does not change the training run."""
        streams = [self.agent.rng] + ([self.collector.replay.rng] if self.collector is not None else [])
        saved = [(stream, copy.deepcopy(stream.state_dict())) for stream in streams]
        try:
            yield
        finally:
            for stream, state in saved:
                stream.load_state_dict(state)

    def set_p_mask(self, p: float) -> None:
        """The masking probability of training-mode encoder passes (the `MaskingSchedule` callback)."""
        self.spec = dataclasses.replace(self.spec, p_mask=float(p))
        self.agent.spec = self.spec

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str, episodes: int, warm_up: bool | None = None) -> dict[str, torch.Tensor]:
        """The authors' evaluation on `split`: `returns [S, C, episodes]`, `contexts [S, C, c]`."""
        return self.evaluate_splits([split], episodes, warm_up)[split]

    def evaluate_splits(
        self, splits: Sequence[str], episodes: int, warm_up: bool | None = None
    ) -> dict[str, dict[str, torch.Tensor]]:
        """The authors' evaluation on each split, stepped together: one sub-env per context, `episodes`
        each (`lit_dmash.experience.evaluation`). Every evaluation rebuilds its envs from the run's
        seeds, so every evaluation (and a `test` of a checkpoint) sees the same start states."""
        for split in splits:
            if split not in self.split_names:
                raise ConfigError("split", split, f"the task defines splits {self.split_names}")
        make = functools.partial(self.make_envs, num_envs=self.env_cfg.contexts_per_split)
        warm = self.protocol.warm_up if warm_up is None else warm_up
        return evaluate_splits(self.agent, make, splits, self.seeds, self.spec.window, episodes, warm)

    # ------------------------------------------------------------------ test (`python -m lit_dmash test`)
    def test_dataloader(self) -> list[int]:
        return [0]  # one "batch": the whole evaluation runs in one test_step

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Evaluate the loaded agent on `test_splits`; write `seed<k>/test.json` and log `test/<split>/return`."""
        from lit_dmash.records import write_test_results

        results = self.evaluate_splits(self.test_splits or self.split_names, self.test_episodes)
        metrics = write_test_results(self, results)
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.env_frames)

    def seed_dir(self, seed: int) -> Path:
        """The folder of one seed's outputs (`eval.json`, `done.json`): `<root>/seed<k>/`."""
        return Path(self.trainer.default_root_dir) / seed_folder(seed)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lit_dmash"] = training_state(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lit_dmash")
        # Before Lightning loads weights of the wrong shape; a fit also checks the protocol.
        check_compatible(self, state, checkpoint.get("hyper_parameters"), resuming=compat.fitting(self))
        self.env_frames, self.updates = state["env_frames"], state["updates"]
        self.nonfinite_skipped = state.get("nonfinite_skipped", 0)
        self.sim_failures = state.get("sim_failures", 0)
        if state.get("collector") is not None:
            self._resume = state  # the rest needs the collector: applied in on_fit_start
