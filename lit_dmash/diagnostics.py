"""Diagnostics maths, kept free of Lightning so each formula can be checked by hand.

The *mode* of a context is its actuator sign pattern (its continuous parameters ignored); it is
known to the logger, never to the agent.
"""

from __future__ import annotations

import math

import torch


def mode_ids(context: torch.Tensor, num_actuators: int) -> tuple[torch.Tensor, list[str]]:
    """Integer mode per context `[N]` and a label per mode id, e.g. `"+-"`."""
    signs = context[..., :num_actuators] > 0
    weights = 2 ** torch.arange(num_actuators - 1, -1, -1, device=context.device)
    codes = (signs.long() * weights).sum(-1)
    labels = [
        "".join("+" if (code >> (num_actuators - 1 - i)) & 1 else "-" for i in range(num_actuators))
        for code in range(2**num_actuators)
    ]
    return codes, labels


def mean_resultant_length(z: torch.Tensor) -> float:
    """Concentration of directions: `|| mean(z / ||z||) ||`, 1 when all point the same way, ~0 when spread."""
    return torch.nn.functional.normalize(z, dim=-1, eps=1e-8).mean(0).norm().item()


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle between two vectors in degrees."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-8).clamp(-1.0, 1.0)
    return math.degrees(math.acos(cos.item()))


def minibatch_variance(grads: torch.Tensor) -> float:
    """Trace of the covariance of `k` minibatch gradient estimates `[k, P]`: mean squared deviation."""
    return (grads - grads.mean(0)).pow(2).sum(-1).mean().item()


def decompose_variance(per_mode: dict[int, torch.Tensor], shares: dict[int, float]) -> tuple[float, float]:
    """Law of total variance over modes: (within, between).

    `per_mode[m]` holds `k` minibatch gradients `[k, P]` from mode `m` alone; `shares[m]` is the
    mode's share of the data. within = sum_m p_m Var_m, between = sum_m p_m ||g_m - g||^2 with
    g_m the mode's mean gradient and g = sum_m p_m g_m.
    """
    total = sum(shares[m] for m in per_mode)
    weights = {m: shares[m] / total for m in per_mode}
    within = sum(weights[m] * minibatch_variance(g) for m, g in per_mode.items())
    means = {m: g.mean(0) for m, g in per_mode.items()}
    overall = sum(weights[m] * means[m] for m in per_mode)
    between = sum(weights[m] * (means[m] - overall).pow(2).sum().item() for m in per_mode)
    return within, between
