"""The diagnostics' formulas on data whose answer is known in closed form or by hand."""

import math

import numpy as np
import pytest
import torch

from lit_dmash.analysis.diagnostics import (
    binary_keys,
    context_modes,
    cosine_similarity_figure,
    cosine_similarity_matrix,
    decompose_variability,
    figure_to_array,
    group_ids,
    ksg_mutual_information,
    mean_gradient_norm,
    mutual_information_per_key,
    representation_overlap,
    variability,
)

N = 2000


def gaussian_pair(rho: float, rng: np.random.Generator, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal x and y with correlation rho: I(x; y) = -0.5 log(1 - rho^2)."""
    x = rng.standard_normal(n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(n)


def gaussian_mi(rho: float) -> float:
    return -0.5 * math.log(1 - rho**2)


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ksg_matches_the_gaussian_closed_form(rho):
    x, y = gaussian_pair(rho, np.random.default_rng(0))
    assert ksg_mutual_information(x, y) == pytest.approx(gaussian_mi(rho), abs=0.06)


def test_ksg_of_independent_variables_is_near_zero():
    rng = np.random.default_rng(1)
    assert 0.0 <= ksg_mutual_information(rng.standard_normal((N, 2)), rng.uniform(size=(N, 3))) < 0.03


def test_ksg_multidimensional_and_per_key():
    rng = np.random.default_rng(2)
    (x1, y1), (x2, y2) = gaussian_pair(0.9, rng), gaussian_pair(0.6, rng)
    z, c = torch.tensor(np.stack([x1, x2], 1)), np.stack([y1, y2], 1)  # tensors are accepted too
    # independent pairs: the informations add up
    assert ksg_mutual_information(z, c) == pytest.approx(gaussian_mi(0.9) + gaussian_mi(0.6), abs=0.1)
    per_key = mutual_information_per_key(z, c)
    assert per_key == pytest.approx([gaussian_mi(0.9), gaussian_mi(0.6)], abs=0.06)


def test_ksg_of_a_binary_key_it_encodes_is_log_two():
    rng = np.random.default_rng(3)
    sign = rng.choice([-1.0, 1.0], size=N)
    z = sign + 0.1 * rng.standard_normal(N)
    assert ksg_mutual_information(z, sign) == pytest.approx(math.log(2), abs=0.03)
    assert ksg_mutual_information(z, sign, seed=5) == pytest.approx(ksg_mutual_information(z, sign, seed=5))


# Two modes of two contexts each, two samples per context at mu_c +- (0, 1):
# mode A: mu = (2, 0), (4, 0) -> mean (3, 0); mode B: mu = (-3, 1), (-3, -1) -> mean (-3, 0); global mean 0.
CONTEXT_MEANS = np.array([[2.0, 0.0], [4.0, 0.0], [-3.0, 1.0], [-3.0, -1.0]])
UP = np.array([0.0, 1.0])
Z = np.concatenate([CONTEXT_MEANS + UP, CONTEXT_MEANS - UP])
CONTEXT = np.tile([0, 1, 2, 3], 2)
MODE = np.tile([0, 0, 1, 1], 2)


def test_variability_decomposition_of_constructed_clusters():
    parts = decompose_variability(Z, CONTEXT, MODE)
    n_d = 8 * 2
    assert parts.within_context == pytest.approx(8 * 1.0 / n_d)  # every sample 1 away from its context mean
    assert parts.within_mode == pytest.approx(4 * 2 * 1.0 / n_d)  # every context mean 1 away from its mode mean
    assert parts.between_mode == pytest.approx(2 * 4 * 9.0 / n_d)  # both mode means 3 away from 0
    assert parts.total == pytest.approx(variability(Z)) == pytest.approx(Z.var(axis=0).mean())
    assert parts.within_context + parts.within_mode + parts.between_mode == pytest.approx(parts.total)


def test_variability_parts_add_up_with_uneven_counts_and_one_mode():
    rng = np.random.default_rng(4)
    context = rng.integers(0, 7, size=300)
    mode = context % 3  # contexts nest in modes; mode sizes differ
    z = rng.normal(size=(300, 5)) + mode[:, None] * 2.0 + context[:, None] * 0.3
    parts = decompose_variability(z, context, mode)
    assert sum(parts[1:]) == pytest.approx(parts.total, rel=1e-12)
    single = decompose_variability(z, context, np.zeros(300))
    assert single.between_mode == pytest.approx(0.0, abs=1e-12)
    assert single.within_context == pytest.approx(parts.within_context)
    with pytest.raises(ValueError, match="more than one mode"):
        decompose_variability(z, np.zeros(300), mode)


def test_modes_come_from_the_binary_keys():
    c = np.array([[1.5, -1.0], [1.5, 1.0], [2.0, -1.0], [2.5, 1.0]])  # [mass, sign]
    assert binary_keys(c) == [1]
    assert context_modes(c).tolist() == [0, 1, 0, 1]
    assert context_modes(c, keys=[]).tolist() == [0, 0, 0, 0]  # no binary key: one mode
    assert group_ids(c).tolist() == [0, 1, 2, 3]


def test_overlap_is_zero_for_separated_modes_and_one_for_identical_ones():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    labels = np.repeat([0, 1], 400)
    assert representation_overlap(np.concatenate([a, b + 100.0]), labels) == 0.0
    assert representation_overlap(np.concatenate([a, b]), labels) == pytest.approx(1.0, abs=0.1)
    unequal = np.repeat([0, 1], [200, 600])  # indistinguishable at unequal shares too
    assert representation_overlap(np.concatenate([a, b]), unequal) == pytest.approx(1.0, abs=0.1)
    assert math.isnan(representation_overlap(a, np.zeros(400)))


def test_cosine_similarity_of_known_context_means():
    means = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    z = np.concatenate([means + 0.5, means - 0.5])  # symmetric noise: the context means are exact
    matrix = cosine_similarity_matrix(z, np.tile([0, 1, 2, 3], 2))
    s = 1 / math.sqrt(2)
    expected = [[1, 0, s, -1], [0, 1, s, 0], [s, s, 1, -s], [-1, 0, -s, 1]]
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    image = figure_to_array(cosine_similarity_figure(matrix, labels=["a", "b", "c", "d"]))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.std() > 0


def test_mean_gradient_norm():
    grads = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 1.0]], requires_grad=True)
    assert mean_gradient_norm(grads) == pytest.approx((5 + 0 + 1) / 3)
