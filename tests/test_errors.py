"""One integer checker for every integer the user gives: bools are refused by name, everywhere."""

from __future__ import annotations

import pytest

from callbacks import MaskingSchedule, PolicyGradientVariance, ZeroShotEvaluation
from lit_dmash.envs import make_env, split_contexts
from lit_dmash.errors import ConfigError, check_int


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "line"),
    [
        (True, 1, None, "invalid n=True: expected an integer >= 1"),
        (0, 1, None, "invalid n=0: expected an integer >= 1"),
        (2.0, 1, None, "invalid n=2.0: expected an integer >= 1"),
        (9, 0, 8, "invalid n=9: expected an integer in 0..8"),
        ("3", None, None, "invalid n='3': expected an integer"),
    ],
)
def test_check_int_names_the_field_and_the_allowed_values(value, minimum, maximum, line):
    with pytest.raises(ConfigError) as err:
        check_int("n", value, minimum, maximum)
    assert str(err.value) == line
    check_int("n", 5, minimum, None if maximum is None else 8)  # in range: no error


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ZeroShotEvaluation(episodes=True), "ZeroShotEvaluation.episodes"),
        (lambda: ZeroShotEvaluation(every_n_updates=False), "ZeroShotEvaluation.every_n_updates"),
        (lambda: PolicyGradientVariance(num_minibatches=True), "PolicyGradientVariance.num_minibatches"),
        (lambda: MaskingSchedule(over_frames=True), "MaskingSchedule.over_frames"),
        (lambda: make_env("di", "train", num_envs=True), "num_envs"),
        (lambda: make_env("di", "train", seed=False), "seed"),
        (lambda: split_contexts("di", "train", contexts_per_split=True), "contexts_per_split"),
    ],
)
def test_a_bool_where_an_integer_belongs_is_refused(build, field):
    with pytest.raises(ConfigError, match=f"invalid {field}="):
        build()
