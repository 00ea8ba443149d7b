"""Stable-Baselines3's SAC on an AIB task through its Gymnasium id, scored with our zero-shot protocol.

The README's "Use the benchmark from another library" shows `train_and_evaluate`'s lines; a test
runs `main` at a tiny budget (and checks the README still shows these lines). Needs the `sb3`
extra (`pip install -e ".[sb3]"`):

    python -m lit_dmash.gym.sb3_example --env-id lit_dmash/DI-v0 --steps 200000 --episodes 10

SAC trains on the 20 train contexts (one `gymnasium.make(id, split="train", context=i)` per
context in a `DummyVecEnv`); it never reads `info["context"]`, so its AER on eval_in and eval_out
is zero-shot and comparable with the arms' (`evaluate_zero_shot`: 20 contexts x `episodes`
episodes, deterministic actions, the same warm-up and start states as ours for the same seed).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def train_and_evaluate(env_id: str, steps: int, episodes: int, seed: int) -> dict[str, float]:
    """Train SAC for `steps` env steps (all 20 contexts together), then its AER per eval split."""
    import gymnasium
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    from lit_dmash.gym import evaluate_zero_shot  # importing lit_dmash.gym registers the lit_dmash/... ids

    train = DummyVecEnv([lambda i=i: gymnasium.make(env_id, split="train", context=i) for i in range(20)])
    model = SAC("MlpPolicy", train, seed=seed).learn(total_timesteps=steps)
    policy = lambda obs, info: model.predict(obs, deterministic=True)[0]  # noqa: E731  (zero-shot: ignores info)
    splits = ("eval_in", "eval_out")
    aer = {s: evaluate_zero_shot(env_id, policy, s, episodes=episodes, seed=seed).aer for s in splits}
    print(aer)  # zero-shot AER per split, comparable with our arms'
    return aer


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="lit_dmash/DI-v0", help="a lit_dmash/... Gymnasium id")
    parser.add_argument("--steps", type=int, default=200_000, help="SAC's env steps, over all 20 contexts")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per context")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    aer = train_and_evaluate(args.env_id, args.steps, args.episodes, args.seed)
    print(json.dumps({"env_id": args.env_id, "steps": args.steps, "episodes": args.episodes, "aer": aer}))
    return aer


if __name__ == "__main__":
    main()
