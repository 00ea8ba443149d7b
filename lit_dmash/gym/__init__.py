"""The Actuator Inversion Benchmark for every RL library: a Gymnasium id for each of the 14 paper tasks.

Importing `lit_dmash.gym` registers the ids of `GYM_IDS` (`lit_dmash/DI-v0`, ...,
`lit_dmash/Hopper-v0`); `gymnasium.make("lit_dmash.gym:lit_dmash/DI-v0", ...)` imports it for you.

- `gymnasium.make(id, split="train", context=0, contexts_per_split=20, horizon=None,
  render_mode=None)` (ode_k also takes `k`): one task in context `context` of the split, an
  `AIBEnv`. `gymnasium.make_vec(id, num_envs=20, split="train", ...)`: our natively batched env,
  sub-env i in context i mod `contexts_per_split`, an `AIBVectorEnv`. (`vectorization_mode=
  "sync"` would build `num_envs` copies of one context instead.)
- Observations and actions are float32 numpy arrays in `Box` spaces built from our specs
  (observations unbounded, actions in [-1, 1]); `info["context"]` holds the raw values of the
  varied keys in the authors' order (`env.context_names`). Only context-aware agents (`concat`,
  `da`) may read it; a zero-shot agent must not.
- Bad arguments (unknown split, context index out of range, unknown option, ...) are a
  `ConfigError`, one line naming the argument and the allowed values, before anything is built.

The seeding rule: the env for (seed s, split, context i) gives, for the same actions, exactly the
observations and rewards of sub-env i of `make_env(task, split, num_envs=20, seed=s)`.
`reset(seed=s)` starts over as that fresh batch would (see `batch.SeededBatch`); each `reset()`
after it is the batch's next episode. This holds because every sub-env of a paper task draws its
k-th episode's start from the k-th draw of a stream seeded by the run seed alone (the authors'
`reset_streams="shared"`, the only setting offered here): one torch stream per env for DI and
ODE, one stream per simulation for the MuJoCo tasks, each simulation built from its own context.
So one sub-env on its own repeats the batch's sub-env i. ode_k's contexts (k >= 3) are drawn
with the seed, as in `make_env`, so they change with it. A first `reset()` without a seed draws
one from gymnasium's `np_random` (fresh entropy), as gymnasium's own envs do.

`evaluate_zero_shot` scores any policy with our evaluation protocol (`evaluate.py`), so an
outside agent's AER is comparable with ours; `sb3_example.py` trains Stable-Baselines3's SAC
(the optional `sb3` extra) and reports it.
"""

from lit_dmash.gym.env import AIBEnv
from lit_dmash.gym.evaluate import Policy, ZeroShotResult, evaluate_zero_shot
from lit_dmash.gym.ids import GYM_IDS, gym_id, register_ids, task_of
from lit_dmash.gym.vector import AIBVectorEnv

register_ids()

__all__ = [
    "GYM_IDS",
    "AIBEnv",
    "AIBVectorEnv",
    "Policy",
    "ZeroShotResult",
    "evaluate_zero_shot",
    "gym_id",
    "register_ids",
    "task_of",
]
