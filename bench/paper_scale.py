"""Speed at the paper's sizes, and how long its main experiment (11 tasks x 7 arms x 10 seeds) would take here.

    python bench/paper_scale.py --quick --device cpu --out results/paper_scale/quick_cpu.json  # dmash on di
    python bench/paper_scale.py [--tasks di ode cheetah] [--methods ...] [--seeds 1 10] [--device cuda]

Agent, envs, collector and replay are built as `lit_dmash.module` builds them (no Lightning) at the authors'
sizes: 256x256 nets, batch 256 -> 12 per context x 20 envs, the task's window K, hypernetwork 64x64, replay of
min(100k, N) // horizon episodes, filled by random steps until every sub-env has a complete episode (1000-step
tasks: in `--fill-horizon` 200-step episodes; the timed envs keep the task's horizon). `--rounds` interleaved
rounds time each block for ~`--block-seconds`; medians are reported, in ms per call for all S seeds at once:

- iteration_ms: `collector.step()` (sampled-policy act, one vector step of S x 20 sub-envs, window and replay
  inserts) + replay sample + `update`: the authors' iteration. update_ms: sample + `update` alone, so
  ms_per_seed_update = update_ms / S, seed_updates_per_s = S / update seconds. collect_ms: `collector.step()`
  alone; env_frames_per_s = S x 20 / its seconds. eval_step_ms: deterministic act + vector step + window push.
  Per (task, S), for all arms: random_step_ms (mean over the fill), reset_ms (median of 5). Derived: warm_up_s =
  2 resets + K eval steps (per training episode); eval_s = 3 splits x (build + 10 x (2 resets + (K + H) steps)).

Projection per task and arm (10 seeds): run_s(S) = 5,000 random steps + (N + 1) x (iteration + warm_up / horizon)
+ (N / 5000 + 1) x eval_s, for ceil(10 / S) processes of S seeds, `--parallel` at once (see ASSUMPTIONS). Writes
JSON (results/paper_scale/<device>.json), prints markdown tables and ours vs the authors' code per seed-update.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from lit_dmash.agent.agent import Agent
from lit_dmash.agent.rollback import Rollback
from lit_dmash.agent.update import update
from lit_dmash.build import agent_spec, make_agent, make_envs, make_optimizers, make_replay, train_iteration
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig
from lit_dmash.envs import task_spec
from lit_dmash.experience.collector import Collector
from lit_dmash.experience.replay import EpisodeReplay
from lit_dmash.experience.rollout import ContextWindow, SeedEnvs, act
from lit_dmash.io import BenchRecord, bench_command, cpu_model
from lit_dmash.methods import PAPER_ARMS

REPO = Path(__file__).resolve().parents[1]

TASKS = ["di", "di_friction", "ode", "cartpole", "ball_in_cup", "walker", "cheetah"]
TASKS += ["reacher_easy", "reacher_hard", "walker_gym", "hopper_gym"]
EVAL_EVERY, EVAL_EPISODES, SPLITS, SEEDS_PER_ARM = 5_000, 10, 3, 10
AUTHORS_METHODS = {"inferred_hypernet_shared": "dmash", "inferred_concat": "dma_star", "unaware_dr": "dr"}
ASSUMPTIONS = "10 seeds per arm as ceil(10/S) processes of S seeds, {} at once, perfectly packed, each as fast as \
measured alone; warm-ups, evaluations estimated from eval steps; fill, other env builds, checkpoints, logs not counted"
AUTHORS_SIZES = {"envs": 20, "batch": 256, "hidden": 256, "hypernet_hidden": 64, "horizon": None, "window": None}


@dataclass
class Setup:
    """What the arms of one (task, S) share: train envs, a filled replay, eval envs (and their build time)."""

    seeds: list[int]
    envs: SeedEnvs
    replay: EpisodeReplay
    eval_envs: SeedEnvs
    eval_build_s: float
    random_step_s: float  # from the fill: uniform actions do not depend on the arm
    reset_s: float  # median of 5 resets of the eval envs


def build_envs(args, task: str, seeds: list[int], split: str, horizon: int | None) -> SeedEnvs:
    return make_envs(
        EnvConfig(name=task, num_envs=args.envs, contexts_per_split=args.envs, horizon=horizon), split, seeds
    )


def build_agent(args, method: str, task: str, envs: SeedEnvs, seeds: list[int]) -> Agent:
    sac = SACConfig(hidden_dims=[args.hidden] * 2, batch_size=args.batch)
    context = ContextConfig(window=args.window, hypernet_hidden=[args.hypernet_hidden] * 2)
    return make_agent(agent_spec(method, task, envs, sac, context), envs, seeds).to(args.device)


def build_setup(args, task: str, num_seeds: int) -> Setup:
    """Envs and the module's replay (`build.make_replay`, capacity min(buffer, N) // horizon), filled with
    random steps."""
    seeds = list(range(num_seeds))
    envs = build_envs(args, task, seeds, "train", args.horizon)
    protocol = ProtocolConfig(total_steps=task_spec(task).updates)
    agent = build_agent(args, "dr", task, envs, seeds)  # every arm has the task's window K
    window = agent.spec.window
    replay = make_replay(agent, envs, protocol, device=args.device)
    short = args.fill_horizon and args.fill_horizon < int(envs.horizon)
    fill_envs = build_envs(args, task, seeds, "train", args.fill_horizon if short else args.horizon)
    filler = Collector(agent, fill_envs, replay, window, 10**12)
    start = time.perf_counter()
    while replay.num_episodes < 1:
        filler.step()
    random_step_s = (time.perf_counter() - start) / filler.vector_steps
    fill_envs.close()
    start = time.perf_counter()
    eval_envs = build_envs(args, task, seeds, "eval_in", args.horizon)
    build_s = time.perf_counter() - start
    reset_s = statistics.median(seconds_per_call(eval_envs.reset, 1, args.device) for _ in range(5))
    return Setup(seeds, envs, replay, eval_envs, build_s, random_step_s, reset_s)


def seconds_per_call(fn: Callable[[], object], calls: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], args) -> int:
    """Warm up twice, then the even number of calls (>= 2) that fills about `--block-seconds`."""
    fn(), fn()
    estimate = seconds_per_call(fn, 2, args.device)
    return max(2, 2 * round(args.block_seconds / estimate / 2))


def measure_arm(args, task: str, method: str, setup: Setup) -> dict:
    """Median seconds per call of each block over interleaved rounds (see the module docstring)."""
    agent = build_agent(args, method, task, setup.envs, setup.seeds)
    optimizers, per_env = make_optimizers(agent), args.batch // args.envs
    envs, replay, eval_envs = setup.envs, setup.replay, setup.eval_envs
    collector = Collector(agent, envs, replay, agent.spec.window, random_steps=0, warm_up=False)
    rollback = Rollback(agent, optimizers.as_list())  # as the module runs it
    obs, context = eval_envs.reset()
    state = {"t": 0, "obs": obs, "context": context, "window": ContextWindow(agent.spec.window, obs, envs.action_dim)}

    def iteration() -> None:  # the module's training step: collect, sample, update
        train_iteration(collector, agent, optimizers, per_env, random_steps=0, rollback=rollback)

    def train_update() -> None:
        batch = replay.sample(per_env, windows=agent.encoder is not None)
        update(agent, batch, optimizers, state["t"], rollback=rollback)
        state["t"] += 1

    def eval_step() -> None:  # the body of `run_episodes`' loop
        obs, window = state["obs"], state["window"]
        action = act(agent, obs, window, state["context"], deterministic=True).to(obs.device)
        result = eval_envs.step(action)
        window.push(obs, action, result.next_obs)
        done = result.done.any()
        state["obs"], state["context"] = eval_envs.reset() if done else (result.next_obs, result.context)

    blocks = {"iteration": iteration, "update": train_update}
    blocks |= {"collect": collector.step, "eval_step": eval_step}
    calls = {name: calls_for(fn, args) for name, fn in blocks.items()}
    times: dict[str, list[float]] = {name: [] for name in blocks}
    for _ in range(args.rounds):
        for name, fn in blocks.items():
            times[name].append(seconds_per_call(fn, calls[name], args.device))
    return summarize(args, task, agent.spec.window, times, setup) | {"calls": calls}


def summarize(args, task: str, window: int, times: dict[str, list[float]], setup: Setup) -> dict:
    """Medians in ms, rates, the derived warm-up and evaluation times, and the projected run time."""
    s = {name: statistics.median(v) for name, v in times.items()}
    s |= {"random_step": setup.random_step_s, "reset": setup.reset_s}
    num, horizon, updates = len(setup.seeds), args.horizon or task_spec(task).horizon, task_spec(task).updates
    warm_up_s = 2 * s["reset"] + window * s["eval_step"]
    eval_s = SPLITS * (setup.eval_build_s + EVAL_EPISODES * (2 * s["reset"] + (window + horizon) * s["eval_step"]))
    iteration_s = s["iteration"] + warm_up_s / horizon
    random_s = ProtocolConfig().random_steps * s["random_step"]
    run_s = random_s + (updates + 1) * iteration_s + (updates // EVAL_EVERY + 1) * eval_s
    out = {f"{name}_ms": 1e3 * v for name, v in s.items()}
    out |= {"seed_updates_per_s": num / s["update"], "env_frames_per_s": num * args.envs / s["collect"]}
    out |= {"ms_per_seed_update": 1e3 * s["update"] / num, "ms_per_seed_iteration": 1e3 * iteration_s / num}
    out |= {"iteration_ms_with_warm_up": 1e3 * iteration_s, "warm_up_s": warm_up_s, "eval_s": eval_s}
    out |= {"run_s": run_s, "run_s_random": random_s, "run_s_iterations": (updates + 1) * iteration_s}
    out |= {"eval_build_s": setup.eval_build_s, "processes_for_10_seeds": math.ceil(SEEDS_PER_ARM / num)}
    out["spread_ms"] = {name: [1e3 * min(v), 1e3 * max(v)] for name, v in times.items()}  # over rounds
    out["task"] = {"window": window, "horizon": horizon, "updates": updates, "evaluations": updates // EVAL_EVERY + 1}
    return out


def measure_task(args, task: str) -> dict:
    results: dict[str, dict] = {m: {} for m in args.methods}
    for num in args.seeds:
        setup = build_setup(args, task, num)
        for method in args.methods:
            results[method][str(num)] = r = measure_arm(args, task, method, setup)
            parts = ", ".join(f"{k} {r[k + '_ms']:.1f}" for k in ("iteration", "update", "collect", "eval_step"))
            print(f"  {task} {method} S={num}: {parts} ms", flush=True)
        setup.envs.close(), setup.eval_envs.close()
    return results


def project(results: dict, parallel: int) -> dict:
    """Wall-clock hours here per task (all its arms, 10 seeds each) and in total, per measured S."""
    out: dict = {"tasks": {}, "total_hours": {}}
    for task, arms in results.items():
        for num in next(iter(arms.values())):
            hours = sum(r[num]["run_s"] * r[num]["processes_for_10_seeds"] for r in arms.values()) / parallel / 3600
            out["tasks"].setdefault(task, {})[num] = hours
            out["total_hours"][num] = out["total_hours"].get(num, 0.0) + hours
    return out


def authors_comparison(results: dict) -> list[dict]:
    """The authors' ms per iteration (one seed) / ours per seed (iteration incl. warm-ups), per S."""
    path, rows = REPO / "results" / "authors_speed.json", []
    cases = json.loads(path.read_text())["cases"] if path.exists() else {}
    for key, case in cases.items():
        ours = results.get(key.split("_", 1)[1], {}).get(AUTHORS_METHODS.get(case["method"]))
        if ours:
            theirs, per_seed = case["ms_per_iteration"], {n: r["ms_per_seed_iteration"] for n, r in ours.items()}
            ratio = {n: theirs / v for n, v in per_seed.items()}
            rows.append({"case": key, "authors_ms_per_iteration": theirs, "ours": per_seed, "authors_over_ours": ratio})
    return rows


def print_tables(results: dict, projection: dict, authors: list[dict], parallel: int) -> None:
    seeds = sorted(int(n) for n in next(iter(next(iter(results.values())).values())))
    lo, hi = seeds[0], seeds[-1]
    head = f"iteration ms S={lo} | S={hi} | ms/seed-update S={lo} | S={hi} | ratio S={lo}/S={hi} | env frames/s S={hi}"
    print(f"\n| task | arm | {head} | eval s S={hi} | hours of one S={hi} run |\n|" + "---|" * 10)
    for task, arms in results.items():
        for method, r in arms.items():
            a, b = r[str(lo)], r[str(hi)]
            cells = [a["iteration_ms"], b["iteration_ms"], a["ms_per_seed_update"], b["ms_per_seed_update"]]
            cells += [a["ms_per_seed_update"] / b["ms_per_seed_update"], b["env_frames_per_s"], b["eval_s"]]
            print(f"| {task} | {method} | " + " | ".join(f"{c:.4g}" for c in [*cells, b["run_s"] / 3600]) + " |")
    print(f"\nProjected wall-clock hours, 10 seeds per arm, {parallel} processes at once:\n")
    print(f"| task | arms | hours, S={hi} batches | hours, S={lo} runs |\n|---|---|---|---|")
    arms = {task: len(a) for task, a in results.items()} | {"**total**": sum(len(a) for a in results.values())}
    for task, hours in [*projection["tasks"].items(), ("**total**", projection["total_hours"])]:
        print(f"| {task} | {arms[task]} | {hours[str(hi)]:.1f} | {hours[str(lo)]:.1f} |")
    for row in authors:
        ours = ", ".join(f"S={n}: {v:.1f} ms ({row['authors_over_ours'][n]:.1f}x)" for n, v in row["ours"].items())
        theirs = f"{row['case']}: authors {row['authors_ms_per_iteration']:.1f} ms per iteration"
        print(f"ours vs authors per seed-update, {theirs}; ours per seed-iteration {ours} (authors / ours)")


def machine(args) -> dict:
    """The processor, Python, GPU and torch settings a speed was measured with."""
    info = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}}
    info["machine"]["gpu"] = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    return info | {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--methods", nargs="+", default=list(PAPER_ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 10], help="seed counts S per process")
    p.add_argument("--quick", action="store_true", help="dmash on di only")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--parallel", type=int, default=None, help="processes at once (default cores // threads)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block-seconds", type=float, default=1.0, help="target time of each timed block")
    p.add_argument("--fill-horizon", type=int, default=200, help="episode length of the replay fill (0: task's)")
    p.add_argument("--out", type=Path, default=None, help="JSON (default results/paper_scale/<device>.json)")
    sizes = p.add_argument_group("sizes (defaults: the authors'; smaller only for tests)")
    for flag, default in AUTHORS_SIZES.items():
        sizes.add_argument(f"--{flag.replace('_', '-')}", type=int, default=default)
    args = p.parse_args(argv)
    args.tasks, args.methods = (["di"], ["dmash"]) if args.quick else (args.tasks, args.methods)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    parallel = args.parallel or max(1, (os.cpu_count() or 1) // args.threads)
    out = args.out or REPO / "results" / "paper_scale" / f"{args.device.split(':')[0]}.json"
    record = BenchRecord(bench_command("bench/paper_scale.py", argv))  # before anything runs
    report = machine(args)
    print(f"load {record.load_start} threads {report['threads']} parallel {parallel}", flush=True)
    results = {task: measure_task(args, task) for task in args.tasks}
    projection = project(results, parallel)
    authors = authors_comparison(results) if all(getattr(args, k) == v for k, v in AUTHORS_SIZES.items()) else []
    report = record.finish() | report
    report["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report |= {"parallel": parallel, "assumptions": ASSUMPTIONS.format(parallel), "results": results}
    report |= {"projection_hours": projection, "authors_comparison": authors}
    if len(args.tasks) == 1 and len(args.methods) == 1:  # the --quick summary
        r = results[args.tasks[0]][args.methods[0]]
        keys = {"seed_updates_per_s": "seed_updates_per_s", "ms_per_update": "update_ms"}
        keys |= {"ms_per_iteration": "iteration_ms", "env_frames_per_s": "env_frames_per_s"}
        report |= {key: {n: v[field] for n, v in r.items()} for key, field in keys.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print_tables(results, projection, authors, parallel)
    print(f"\nload {report['load_1_5_15']}; wrote {out}")
    return report


if __name__ == "__main__":
    main()
