"""Time the authors' own training loop (their `dmash.contexts.sac.train`, unmodified) per iteration.

Run in a separate environment holding the authors' code (GitHub `dma-sh/dmash`, commit `c74cb4a`,
installed with its own pins: torch 2.13.0+cpu, mujoco 3.3.4, dm-control 1.0.31, hypnettorch 0.0.4),
never with this package's environment:

    TIMEWRAP_STUB_METRICS=1 TIMEWRAP_ITERS=400 TIMEWRAP_OUT=dmash_di.json python bench/authors_speed.py \
        --cuda False --wandb False --seed 0 --num_train_envs 20 --num_eval_envs 20 \
        --env_id dmash/DI-sparse-v0 --context_size 24 --total_timesteps 100000 --learning_starts 200 \
        --method inferred_hypernet_shared

It only wraps a few of their callables with timers (behaviour unchanged): each call of the training
replay buffer's `sample()` (once per loop iteration) stamps an iteration, their evaluation and
context warm-up are timed separately, and the run stops after `TIMEWRAP_ITERS` iterations.
`results/authors_speed.json` collects the figures this gave on our 2-core machine, one torch thread.
Env vars:
  TIMEWRAP_ITERS         iterations to time after the skip (default 200)
  TIMEWRAP_SKIP          iterations after step 0 to discard (default 5)
  TIMEWRAP_OUT           JSON output path
  TIMEWRAP_PROFILE       if set, path for cProfile stats of the timed window only
  TIMEWRAP_STUB_METRICS  1: replace their logging-only disentanglement metrics (random-forest grid
                         searches run inside the untimed step-0 evaluation, > 20 min) by constants
Remaining argv goes to their tyro `Args`.
"""

import cProfile
import json
import os
import sys
import time

import dmash.contexts.sac as sac
import gymnasium
import numpy as np
import torch
from dmash.contexts import dataset as dsmod

torch.set_num_threads(1)

ITERS = int(os.environ.get("TIMEWRAP_ITERS", "200"))
SKIP = int(os.environ.get("TIMEWRAP_SKIP", "5"))
OUT = os.environ.get("TIMEWRAP_OUT", "authors_speed_out.json")
PROF = os.environ.get("TIMEWRAP_PROFILE")
pc = time.perf_counter


class Stop(Exception):
    pass


S = dict(current=None, train_rb=None, n_sample=0, t0_program=pc())
marks = []  # one dict per iteration interval (starts at a train-rb sample)
cur = None  # current interval dict
profiler = cProfile.Profile() if PROF else None


def new_interval(t):
    global cur
    cur = dict(t_s=t, t_se=None, t_ue=None, t_es=None, t_ee=None, warmup=0.0, evals=0.0, n_warm=0, n_eval=0, reset=0.0)
    marks.append(cur)


def mark_update_end(t):
    if cur is not None and cur["t_ue"] is None:
        cur["t_ue"] = t


# --- replay buffer: train-rb identification, sample timestamps, stop condition
_orig_init = dsmod.MultiContextReplayBuffer.__init__


def _init(self, *a, **k):
    _orig_init(self, *a, **k)
    if S["train_rb"] is None:  # the training buffer is constructed first in train()
        S["train_rb"] = self


dsmod.MultiContextReplayBuffer.__init__ = _init
sac.MultiContextReplayBuffer.__init__ = _init  # same class object; harmless

_orig_sample = dsmod.MultiContextReplayBuffer.sample


def _sample(self, batch_size, keys=None, indx=None, dataset_index=None):
    if self is S["train_rb"] and dataset_index is None and S["current"] is None:
        t = pc()
        S["n_sample"] += 1
        n = S["n_sample"]  # n-th update = step n-1
        if n == SKIP + 2 and profiler is not None:
            profiler.enable()
        if n == SKIP + 2 + ITERS:
            if profiler is not None:
                profiler.disable()
            cur["t_end"] = t
            raise Stop()
        if cur is not None:
            cur["t_end"] = t
        new_interval(t)
        cur["step"] = n - 1
        out = _orig_sample(self, batch_size, keys, indx, dataset_index)
        cur["t_se"] = pc()
        return out
    return _orig_sample(self, batch_size, keys, indx, dataset_index)


dsmod.MultiContextReplayBuffer.sample = _sample


# --- evaluation and context warm-up (module globals looked up by train())
def wrap_phase(fn, key_t, key_n):
    def w(*a, **k):
        if S["current"] is not None:
            return fn(*a, **k)
        t = pc()
        mark_update_end(t)
        S["current"] = key_t
        try:
            return fn(*a, **k)
        finally:
            S["current"] = None
            if cur is not None:
                cur[key_t] += pc() - t
                cur[key_n] += 1

    return w


sac.make_evaluation_and_fill_ds = wrap_phase(sac.make_evaluation_and_fill_ds, "evals", "n_eval")
sac.fill_context_window = wrap_phase(sac.fill_context_window, "warmup", "n_warm")

# --- acting: compute_context on a num_envs-row batch at top level marks end of the update
_orig_cc = sac.compute_context


def _cc(dce, rce, data, device, args, training=True):
    if S["current"] is None and data["observations"].shape[0] == args.num_train_envs:
        mark_update_end(pc())
    return _orig_cc(dce, rce, data, device, args, training)


sac.compute_context = _cc

# --- env step / reset of the training vector env (top level only)
SV = gymnasium.vector.SyncVectorEnv
_orig_step, _orig_reset = SV.step, SV.reset


def _step(self, actions):
    if S["current"] is None and cur is not None:
        t = pc()
        mark_update_end(t)
        cur["t_es"] = t
        out = _orig_step(self, actions)
        cur["t_ee"] = pc()
        return out
    return _orig_step(self, actions)


def _reset(self, *a, **k):
    if S["current"] is None and cur is not None:
        t = pc()
        out = _orig_reset(self, *a, **k)
        cur["reset"] += pc() - t
        return out
    return _orig_reset(self, *a, **k)


SV.step, SV.reset = _step, _reset

# --- optional: stub the logging-only diagnostics of the (untimed) evaluation block.
# They fit random forests with 10-fold CV (dci, compute_metrics) and take >20 min per
# evaluation on this machine; they only feed the logger and run only at step % 5000 == 0.
STUB = os.environ.get("TIMEWRAP_STUB_METRICS") == "1"
if STUB:
    sac.compute_metrics = lambda *a, **k: tuple({} for _ in range(8))
    sac.dci = lambda *a, **k: (0.0, 0.0, 0.0)
    sac.mig = lambda *a, **k: 0.0
    sac.beta_vae = lambda *a, **k: 0.0
    sac.dcimig = lambda *a, **k: 0.0


def summarize():
    rows = [m for m in marks if m.get("t_end") is not None]
    timed = [m for m in rows if m["step"] >= SKIP + 1]  # intervals after the skip

    def tot(m):
        return m["t_end"] - m["t_s"]

    noeval = [m for m in timed if m["n_eval"] == 0]
    clean = [m for m in noeval if m["n_warm"] == 0]
    res = {}

    def stats(ms, f):
        v = np.array([f(m) for m in ms]) * 1e3
        return (
            dict(
                mean=float(v.mean()),
                median=float(np.median(v)),
                p10=float(np.percentile(v, 10)),
                p90=float(np.percentile(v, 90)),
                n=len(v),
            )
            if len(v)
            else None
        )

    res["all_in_excl_eval_ms"] = stats(noeval, lambda m: tot(m) - m["evals"])  # warm-ups amortised
    res["excl_eval_and_warmup_iters_ms"] = stats(clean, tot)
    res["n_intervals_with_warmup"] = sum(1 for m in noeval if m["n_warm"])
    res["n_intervals_with_eval"] = sum(1 for m in timed if m["n_eval"])
    ok = [m for m in clean if None not in (m["t_se"], m["t_ue"], m["t_es"], m["t_ee"])]
    res["split_clean_iters_ms"] = dict(
        sample=stats(ok, lambda m: m["t_se"] - m["t_s"]),
        update=stats(ok, lambda m: m["t_ue"] - m["t_se"]),
        act=stats(ok, lambda m: m["t_es"] - m["t_ue"]),
        env_step=stats(ok, lambda m: m["t_ee"] - m["t_es"]),
        insert_bookkeeping=stats(ok, lambda m: m["t_end"] - m["t_ee"] - m["reset"]),
    )
    res["warmup_ms_per_episode"] = stats([m for m in noeval if m["n_warm"]], lambda m: m["warmup"] + m["reset"])
    res["wall_timed_window_s"] = float(timed[-1]["t_end"] - timed[0]["t_s"]) if timed else None
    res["eval_s_in_window"] = float(sum(m["evals"] for m in timed))
    res["iters"] = len(timed)
    res["skip"] = SKIP
    res["stub_eval_metrics"] = STUB
    res["eval_step0_s"] = float(sum(m["evals"] for m in rows if m["step"] == 0))
    res["intervals_ms_all"] = [round((tot(m) - m["evals"]) * 1e3, 2) for m in timed]
    res["argv"] = sys.argv[1:]
    res["torch_threads"] = torch.get_num_threads()
    res["loadavg_end"] = os.getloadavg()
    res["program_s"] = pc() - S["t0_program"]
    return res


if __name__ == "__main__":
    sys.argv = ["sac", *sys.argv[1:]]
    t0 = pc()
    LOAD0 = os.getloadavg()
    try:
        sac.train()
        print("[timewrap] train() returned before the stop (too few iterations?)")
    except Stop:
        pass
    res = summarize()
    res["loadavg_start"] = LOAD0
    with open(OUT, "w") as f:
        json.dump(res, f, indent=1)
    if profiler is not None:
        profiler.dump_stats(PROF)
    print(json.dumps({k: v for k, v in res.items() if k != "argv"}, indent=1))
