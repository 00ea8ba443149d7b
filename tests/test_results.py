"""Aggregation against hand computations; every shipped config parses."""

from pathlib import Path

import pytest

from lit_dmash.cli import main
from lit_dmash.grid import GridSpec
from lit_dmash.results import aggregate, iqm_with_ci, markdown_table, relative_gain

CONF = Path(__file__).resolve().parents[1] / "conf"
CONFIGS = sorted(str(p) for p in CONF.glob("**/*.yaml") if not {"envs", "grids"} & set(p.parts))
GRIDS = sorted(CONF.glob("grids/*.yaml"))


def test_relative_gain_is_the_papers_formula():
    assert relative_gain(-12.0, -24.0) == pytest.approx(0.5)  # half the cost: +50%
    assert relative_gain(90.0, 60.0) == pytest.approx(0.5)
    assert relative_gain(-30.0, -20.0) == pytest.approx(-0.5)


def test_iqm_trims_a_quarter_on_each_side_and_ci_brackets_it():
    returns = [-100.0, -12.0, -10.0, -8.0, 50.0, -11.0, -9.0, -10.0]
    # 8 runs: the middle 50% are the 3rd..6th sorted values: -11, -10, -10, -9.
    iqm, low, high = iqm_with_ci(returns, reps=500)
    assert iqm == pytest.approx((-11 - 10 - 10 - 9) / 4)
    assert low <= iqm <= high


def test_aggregate_and_table():
    results = aggregate({"dr": {"eval_out": [-60.0, -40.0]}, "dmash": {"eval_out": [-12.0, -8.0]}}, reps=200)
    assert results["dmash"]["eval_out"]["mean"] == pytest.approx(-10.0)
    assert results["dmash"]["eval_out"]["returns"] == [-12.0, -8.0]
    table = markdown_table(results)
    assert "+80.0%" in table  # (-10 - -50) / 50


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).stem)
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", config, "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "method:" in capsys.readouterr().out


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_every_shipped_grid_is_valid(grid):
    spec = GridSpec.load(grid)
    assert len(spec.runs()) == len(spec.envs) * len(spec.methods) * len(spec.seeds)
