"""Extension context spaces (`*_signs` envs): YAML validation, split membership, reproducible sampling."""

import pytest
import torch

from lit_dmash.envs import ContextSampler, ContextSpace, context_space
from lit_dmash.errors import ConfigError

VALID = {
    "num_actuators": 2,
    "params": ["friction"],
    "splits": {"train": {"signs": [[1, 1], [1, -1]], "friction": [[0.5, 1.5]]}},
}


def with_train(**changes):
    spec = {**VALID["splits"]["train"], **changes}
    return {**VALID, "splits": {"train": spec}}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (with_train(signs=[]), "x.splits.train.signs"),
        (with_train(signs=[[1, 1, 1]]), "x.splits.train.signs"),
        (with_train(signs=[[1, 0]]), "x.splits.train.signs"),
        (with_train(friction=[[1.5, 0.5]]), "x.splits.train.friction"),
        (with_train(friction=[]), "x.splits.train.friction"),
        (with_train(friction=[[0.1]]), "x.splits.train.friction"),
        (with_train(mass=[[1, 2]]), "x.splits.train.mass"),
        ({**VALID, "num_actuators": 0}, "x.num_actuators"),
        ({**VALID, "splits": {}}, "x.splits"),
    ],
)
def test_malformed_split_spec_names_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        ContextSpace.from_dict("x", data)
    assert err.value.field == field
    assert field in str(err.value)


def test_unknown_split_lists_the_env_splits():
    space = context_space("di_signs")
    with pytest.raises(ConfigError, match="eval_pattern"):
        space.split("eval_nowhere")


@pytest.fixture
def space():
    return context_space("di_signs")


@pytest.mark.parametrize("split", ["train", "eval_in", "eval_out", "eval_pattern"])
def test_sampled_contexts_lie_in_their_split(space, split):
    contexts = ContextSampler(space.split(split), seed=3).sample(2000)
    assert contexts.shape == (2000, 3)
    assert space.split(split).contains(contexts).all()


def test_eval_out_friction_never_inside_training_range(space):
    friction = ContextSampler(space.split("eval_out"), seed=0).sample(5000)[:, 2]
    ((low, high),) = space.split("train").param_ranges[0]
    assert not ((friction >= low) & (friction <= high)).any()
    assert (friction < low).any() and (friction > high).any(), "eval_out must cover both sides"


def test_eval_pattern_never_appears_in_train(space):
    train = ContextSampler(space.split("train"), seed=0).sample(5000)[:, :2]
    (pattern,) = space.split("eval_pattern").sign_patterns
    assert not (train == torch.tensor(pattern)).all(-1).any()
    assert len(torch.unique(train, dim=0)) == 3


def test_same_seed_same_contexts_other_seed_other_contexts(space):
    split = space.split("train")
    a, b, c = (ContextSampler(split, seed=s).sample(100) for s in (7, 7, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_union_of_ranges_is_sampled_in_proportion_to_width():
    data = with_train(friction=[[0.0, 1.0], [2.0, 5.0]])
    friction = ContextSampler(ContextSpace.from_dict("x", data).split("train"), seed=0).sample(20000)[:, 2]
    share_of_wide_range = (friction >= 2.0).float().mean().item()
    assert share_of_wide_range == pytest.approx(0.75, abs=0.02)


def test_paper_tasks_have_no_context_space():
    with pytest.raises(ConfigError, match="paper task"):
        context_space("di_friction")


def test_every_extension_env_ships_its_context_space():
    from lit_dmash.envs.extension.registration import EXTENSION_ENVS

    for name in EXTENSION_ENVS:
        assert "eval_pattern" in context_space(name).split_names
