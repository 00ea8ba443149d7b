"""The update computes what it computed before it was made faster: fixed-seed tiny fits of every arm
(two seeds stacked) end with the weights recorded at commit f1fd66e (`tests/reference_fit.py`)."""

from __future__ import annotations

import pytest
import torch
from reference_fit import CASES, REFERENCE, fit_weights

pytestmark = pytest.mark.integration  # a Trainer fit of every arm


@pytest.mark.parametrize(("method", "task"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_fixed_seed_fit_ends_with_the_reference_weights(method, task, tmp_path):
    expected = torch.load(REFERENCE, weights_only=True)[f"{method}/{task}"]
    got = fit_weights(method, task, tmp_path)
    assert got.shape == expected.shape
    # Seven Adam steps amplify rounding differences of an equivalent form a little; a changed
    # function moves weights by ~lr = 1e-3 per step.
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=2e-5)
