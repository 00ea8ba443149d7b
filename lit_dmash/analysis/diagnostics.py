"""Diagnostics maths, kept free of Lightning so each formula can be checked by hand.

The *mode* of a context is the value of its binary key(s) (e.g. the actuator sign pattern), its
continuous parameters ignored; a task without a binary key has one mode. Modes are known to the
logger, never to the agent. Functions take torch tensors or numpy arrays (`[N, d]` samples) and
return Python floats or numpy arrays.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ArrayLike = np.ndarray | torch.Tensor | Sequence


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


# --- shared helpers ----------------------------------------------------------------------------


def as_numpy(x: ArrayLike) -> np.ndarray:
    """float64 numpy copy of a tensor (any device, with or without grad) or array; 1-D becomes `[N, 1]`."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    array = np.asarray(x, dtype=np.float64)
    return array.reshape(-1, 1) if array.ndim == 1 else array


def group_ids(values: ArrayLike) -> np.ndarray:
    """Integer id `[N]` per distinct row of `values` `[N, d]` (ids follow the sorted order of the rows).

    The true context rows give context ids; the binary columns alone give mode ids.
    """
    array = as_numpy(values)
    if array.shape[1] == 0:
        return np.zeros(len(array), dtype=np.int64)
    return np.unique(array, axis=0, return_inverse=True)[1].reshape(-1)


def binary_keys(context: ArrayLike) -> list[int]:
    """Columns of the true context `[N, dc]` that take exactly two values (sign or on/off keys).

    A heuristic: a continuous key sampled at only two values is counted as well, so pass the
    known binary keys to `context_modes` when they are known.
    """
    array = as_numpy(context)
    return [j for j in range(array.shape[1]) if len(np.unique(array[:, j])) == 2]


def context_modes(context: ArrayLike, keys: Sequence[int] | None = None) -> np.ndarray:
    """Mode id `[N]` per sample: the distinct value of the binary `keys` of its context (one mode if none).

    `keys=None` detects them with `binary_keys`.
    """
    array = as_numpy(context)
    keys = binary_keys(array) if keys is None else list(keys)
    return group_ids(array[:, keys])


# --- (a) informativeness: I(z; c) --------------------------------------------------------------


def _standardise_and_jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit variance per column, plus 1e-10-scale noise that breaks ties between equal values (Kraskov et al.)."""
    std = x.std(axis=0)
    x = x / np.where(std > 0, std, 1.0)
    return x + 1e-10 * np.maximum(1.0, np.abs(x).mean(axis=0)) * rng.standard_normal(x.shape)


def _strict_neighbour_counts(x: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """For each point i, how many other points lie strictly within `radius[i]` (max-norm)."""
    inside = cKDTree(x).query_ball_point(x, r=np.nextafter(radius, 0.0), p=np.inf, return_length=True)
    return np.asarray(inside) - 1  # the point itself


def ksg_mutual_information(z: ArrayLike, c: ArrayLike, k: int = 3, seed: int = 0) -> float:
    """I(z; c) in nats by the Kraskov-Stögbauer-Grassberger estimator 1 (kNN, k = 3 as in the paper).

    I = psi(k) + psi(N) - < psi(n_z(i) + 1) + psi(n_c(i) + 1) >_i, where eps_i is the max-norm
    distance from sample i to its k-th neighbour in the joint space (z, c) and n_z(i), n_c(i)
    count the other samples strictly closer than eps_i in z alone and in c alone (max-norm).
    Every column is first scaled to unit variance and jittered by ~1e-10 (seeded) so that discrete
    keys have no ties. Negative estimates (possible when I ~ 0) are returned as 0, as the authors do.
    """
    rng = np.random.default_rng(seed)
    z_std, c_std = _standardise_and_jitter(as_numpy(z), rng), _standardise_and_jitter(as_numpy(c), rng)
    if len(z_std) != len(c_std):
        raise ValueError(f"z has {len(z_std)} samples, c has {len(c_std)}")
    if len(z_std) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(z_std)}")
    joint = np.hstack([z_std, c_std])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]  # neighbour 0 is the point itself
    n_z, n_c = _strict_neighbour_counts(z_std, eps), _strict_neighbour_counts(c_std, eps)
    mi = digamma(k) + digamma(len(joint)) - np.mean(digamma(n_z + 1) + digamma(n_c + 1))
    return max(0.0, float(mi))


def mutual_information_per_key(z: ArrayLike, c: ArrayLike, k: int = 3, seed: int = 0) -> list[float]:
    """`[I(z; c_j) for each context key j]`: which keys the embedding encodes (KSG, as above)."""
    context = as_numpy(c)
    return [ksg_mutual_information(z, context[:, j], k=k, seed=seed) for j in range(context.shape[1])]


# --- (b) variability and its decomposition -----------------------------------------------------


def variability(z: ArrayLike) -> float:
    """tr Cov(z) / d_z: the mean per-dimension (population) variance of the embeddings, pooled over contexts."""
    return float(as_numpy(z).var(axis=0).mean())


class VariabilityParts(NamedTuple):
    """tr Cov(z) / d_z split exactly by the law of total variance (population weights, ddof = 0)."""

    total: float
    within_context: float  # samples around their context's mean: noise of the encoder
    within_mode: float  # context means around their mode's mean: spread of one mode's contexts
    between_mode: float  # mode means around the global mean: separation of the modes


def _group_means(z: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean row of `z` per id `0..max(ids)`, `[G, d]`."""
    counts = np.bincount(ids)
    sums = np.zeros((len(counts), z.shape[1]))
    np.add.at(sums, ids, z)
    return sums / np.maximum(counts, 1)[:, None]


def _check_nested(context: np.ndarray, mode: np.ndarray) -> None:
    """Every context must lie in a single mode, else the three parts do not nest."""
    pairs = np.unique(np.stack([context, mode], axis=1), axis=0)
    if len(pairs) != len(np.unique(context)):
        raise ValueError("a context id appears with more than one mode id")


def decompose_variability(z: ArrayLike, context: ArrayLike, mode: ArrayLike) -> VariabilityParts:
    """Split tr Cov(z) / d_z into within-context + within-mode + between-mode parts that add up exactly.

    With N samples z_i, context means mu_c, mode means mu_m (sample-weighted) and global mean mu:
    total = 1/(N d) sum_i ||z_i - mu||^2 = 1/(N d) [ sum_i ||z_i - mu_c(i)||^2
    + sum_c n_c ||mu_c - mu_m(c)||^2 + sum_m n_m ||mu_m - mu||^2 ].
    `context` and `mode` are integer ids per sample `[N]` (see `group_ids`, `context_modes`).
    """
    z = as_numpy(z)
    context_id = group_ids(context)
    mode_id = group_ids(mode)
    _check_nested(context_id, mode_id)
    n, d = z.shape
    mu_context, mu_mode, mu = _group_means(z, context_id), _group_means(z, mode_id), z.mean(axis=0)
    mode_of_context = np.zeros(len(mu_context), dtype=np.int64)
    mode_of_context[context_id] = mode_id
    within_context = np.sum((z - mu_context[context_id]) ** 2) / (n * d)
    within_mode = np.sum(np.bincount(context_id) * np.sum((mu_context - mu_mode[mode_of_context]) ** 2, axis=1))
    between_mode = np.sum(np.bincount(mode_id) * np.sum((mu_mode - mu) ** 2, axis=1))
    return VariabilityParts(
        total=variability(z),
        within_context=float(within_context),
        within_mode=float(within_mode / (n * d)),
        between_mode=float(between_mode / (n * d)),
    )


# --- (c) overlap between modes -----------------------------------------------------------------


def representation_overlap(z: ArrayLike, mode: ArrayLike, k: int = 10) -> float:
    """How mixed the modes are in z: kNN mode mixing, 0 = separated, ~1 = indistinguishable.

    Our definition (the authors define none): with f_i the fraction of sample i's k nearest
    neighbours in z (Euclidean, itself excluded) that belong to another mode, and n_m(i) the size
    of i's mode, overlap = sum_i f_i / sum_i (N - n_m(i)) / (N - 1). The denominator is E[sum_i f_i]
    when mode labels are exchangeable (modes drawn from one distribution), so overlap ~ 1 then, at
    any mode shares; it can exceed 1 when neighbours are systematically of the other mode. NaN
    with a single mode.
    """
    z = as_numpy(z)
    mode_id = group_ids(mode)
    n = len(z)
    if not 0 < k < n:
        raise ValueError(f"need 0 < k < N, got k={k}, N={n}")
    shares = np.bincount(mode_id)[mode_id]
    expected = np.sum((n - shares) / (n - 1))
    if expected == 0:
        return float("nan")
    neighbours = cKDTree(z).query(z, k=k + 1)[1][:, 1:]
    observed = np.mean(mode_id[neighbours] != mode_id[:, None], axis=1).sum()
    return float(observed / expected)


# --- (d) cosine similarity of the per-context mean embeddings ----------------------------------


def context_means(z: ArrayLike, context: ArrayLike) -> np.ndarray:
    """Mean embedding per context `[C, d_z]`, contexts in the order of `group_ids(context)`."""
    return _group_means(as_numpy(z), group_ids(context))


def cosine_similarity_matrix(z: ArrayLike, context: ArrayLike) -> np.ndarray:
    """`S[a, b] = cos(mu_a, mu_b)` of the per-context mean embeddings mu `[C, C]` (the authors log S.mean())."""
    means = context_means(z, context)
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def cosine_similarity_figure(matrix: np.ndarray, labels: Sequence[str] | None = None, title: str = "") -> Figure:
    """Heat map of a cosine-similarity matrix on [-1, 1] (a matplotlib Figure, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.5 + 0.25 * len(matrix)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
    if labels is not None:
        ticks = np.arange(len(labels))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
        ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_title(title or "cosine similarity of context means")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """RGB image `[H, W, 3]` uint8 of a figure (for TensorBoard `add_image(..., dataformats="HWC")`); closes it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    buffer.seek(0)
    return (plt.imread(buffer, format="png")[..., :3] * 255).round().astype(np.uint8)


# --- (e) shadow gradients ------------------------------------------------------------------------


def mean_gradient_norm(grads: ArrayLike) -> float:
    """E_i ||dL/dz_i||: mean Euclidean norm of per-sample gradients `[N, d_z]` of a loss w.r.t. z.

    For the "shadow gradient" of the actor or critic loss (the stop-gradient on z lifted, the
    gradient measured, never applied). The authors log the norm of the whole batch gradient
    instead; `np.linalg.norm(grads)` gives that.
    """
    return float(np.linalg.norm(as_numpy(grads), axis=1).mean())
