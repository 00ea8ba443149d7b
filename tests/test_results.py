"""Aggregation against hand computations; a tiny grid end to end; every shipped config parses."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_eval
from rliable import metrics

from lit_dmash.analysis.aggregate import aggregate_grid
from lit_dmash.analysis.aggregate import main as aggregate_main
from lit_dmash.analysis.grid_results import collect, curves, final_scores
from lit_dmash.analysis.results import (
    NATURAL_BOUNDS,
    aggregate_iqm,
    aggregate_scopes,
    iqm_with_ci,
    load_bounds,
    mean_with_ci,
    method_order,
    per_column_iqm,
    probability_of_improvement,
    relative_gain,
    resolve_bounds,
    score_matrix,
    summarise,
    task_groups,
)
from lit_dmash.experiments.grid import GridSpec

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
CONFIGS = sorted(str(p) for p in CONF.glob("**/*.yaml") if not {"envs", "grids"} & set(p.parts))
GRIDS = sorted(CONF.glob("grids/*.yaml"))
REPS = 100  # bootstrap replications in tests: the CIs are checked for shape, not width


def test_relative_gain_is_the_papers_formula():
    assert relative_gain(-12.0, -24.0) == pytest.approx(0.5)  # half the cost: +50%
    assert relative_gain(90.0, 60.0) == pytest.approx(0.5)
    assert relative_gain(-30.0, -20.0) == pytest.approx(-0.5)
    assert relative_gain(1.0, 0.0) is None


def test_iqm_of_one_to_eight_is_the_mean_of_the_middle_four_and_ci_brackets_it():
    iqm, low, high = iqm_with_ci([8, 1, 7, 2, 6, 3, 5, 4], reps=REPS)
    assert iqm == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert 1 <= low <= iqm <= high <= 8


def test_per_column_iqm_is_rliables_iqm_of_each_column():
    matrix = np.random.default_rng(0).normal(size=(10, 3))
    estimates = per_column_iqm(matrix, reps=REPS)
    for column, estimate in enumerate(estimates):
        assert estimate.value == pytest.approx(metrics.aggregate_iqm(matrix[:, column]))
        assert estimate.low <= estimate.value <= estimate.high


def test_aggregate_iqm_pools_runs_and_tasks_of_each_subset():
    matrix = np.arange(1.0, 9.0).reshape(4, 2)  # task 0: 1 3 5 7, task 1: 2 4 6 8
    estimates = aggregate_iqm(matrix, {"all": [0, 1], "first": [0]}, reps=REPS)
    assert estimates["all"].value == pytest.approx(4.5)  # middle four of 1..8
    assert estimates["first"].value == pytest.approx(4.0)  # middle two of 1 3 5 7
    constant = aggregate_iqm(np.full((5, 2), 0.3), {"all": [0, 1]}, reps=REPS)["all"]
    assert (constant.low, constant.high) == pytest.approx((0.3, 0.3))


def test_probability_of_improvement_by_hand():
    better, worse = np.array([[5.0, 50.0], [6.0, 60.0], [7.0, 70.0]]), np.array([[1.0, 10.0], [2.0, 20.0]])
    dominant = probability_of_improvement(better, worse, reps=REPS)
    assert (dominant.value, dominant.low, dominant.high) == (1.0, 1.0, 1.0)
    assert probability_of_improvement(worse, better, reps=REPS).value == 0.0
    assert probability_of_improvement(better, better, reps=REPS).value == 0.5
    # one task, pairs (x, y): (1, 2) loses, (1, 2) loses, (2, 2) ties, (2, 2) ties: (0 + 0 + .5 + .5) / 4
    tied = probability_of_improvement(np.array([[1.0], [2.0]]), np.array([[2.0], [2.0]]), reps=REPS)
    assert tied.value == pytest.approx(0.25)


def test_probability_of_improvement_per_task_and_over_both():
    # dmash beats dr on every run of di and loses on every run of ode: P = 1 and 0 per task, and over
    # both tasks the mean of the two (rliable averages the per-task Mann-Whitney statistics).
    scores = {
        "di": {"dmash": {"eval_out": {0: 80.0, 1: 90.0}}, "dr": {"eval_out": {0: 10.0, 1: 20.0}}},
        "ode": {"dmash": {"eval_out": {0: 20.0, 1: 30.0}}, "dr": {"eval_out": {0: 150.0, 1: 160.0}}},
    }
    summary = summarise(scores, reps=REPS)
    by_task = summary["improvement_by_task"]
    assert by_task["di"]["eval_out"]["dr"]["value"] == 1.0 and by_task["di"]["eval_out"]["dr"]["tasks"] == ["di"]
    assert by_task["ode"]["eval_out"]["dr"]["value"] == 0.0
    assert summary["improvement"]["eval_out"]["dr"]["value"] == pytest.approx(0.5)


def test_bootstraps_are_seeded_and_leave_the_global_generator_alone():
    scores = np.random.default_rng(1).normal(size=(6, 2))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = aggregate_iqm(scores, {"all": [0, 1]}, reps=REPS, seed=7)
    assert np.array_equal(np.random.get_state()[1], before)
    assert aggregate_iqm(scores, {"all": [0, 1]}, reps=REPS, seed=7) == first
    assert aggregate_iqm(scores, {"all": [0, 1]}, reps=REPS, seed=8) != first


def test_mean_with_ci_per_point():
    values = np.array([[1.0, 10.0], [3.0, 10.0]])
    mean, low, high = mean_with_ci(values, reps=REPS)
    np.testing.assert_allclose(mean, [2.0, 10.0])
    assert 1.0 <= low[0] <= 2.0 <= high[0] <= 3.0 and low[1] == high[1] == 10.0


def test_bounds_natural_data_and_override(tmp_path):
    scores = {
        "di": {"dr": {"train": {0: 10.0}}},
        "walker_gym": {"dr": {"train": {0: 300.0}, "eval_out": {0: 100.0}}, "dmash": {"train": {0: 900.0}}},
        "my_task": {"dr": {"train": {0: 5.0, 1: 7.0}}},
    }
    bounds = resolve_bounds(scores)
    assert (bounds["di"].low, bounds["di"].high, bounds["di"].source) == (0.0, 100.0, "natural")
    assert (bounds["walker_gym"].low, bounds["walker_gym"].high, bounds["walker_gym"].source) == (100.0, 900.0, "data")
    assert bounds["my_task"].source == "data"
    assert bounds["di"].normalise(25.0) == pytest.approx(0.25)
    assert bounds["walker_gym"].normalise(300.0) == pytest.approx(0.25)
    assert NATURAL_BOUNDS["cartpole"] == (0.0, 1000.0) and NATURAL_BOUNDS["ode"] == (0.0, 200.0)
    file = tmp_path / "bounds.yaml"
    file.write_text("di: [-100, 100]\nwalker_gym: [0, 5000]\n")
    overridden = resolve_bounds(scores, load_bounds(file))
    assert overridden["di"].normalise(0.0) == pytest.approx(0.5) and overridden["di"].source == "override"
    file.write_text("di: [1, 0]\n")
    with pytest.raises(ValueError, match="low < high"):
        load_bounds(file)


def test_unequal_runs_keep_the_lowest_seeds_of_every_task():
    normalised = {"a": {"m": {"eval_out": {2: 0.9, 0: 0.1, 1: 0.2}}}, "b": {"m": {"eval_out": {5: 0.7, 3: 0.3}}}}
    matrix, tasks = score_matrix(normalised, "m", "eval_out", ["a", "b"])
    assert tasks == ["a", "b"] and matrix.tolist() == [[0.1, 0.3], [0.2, 0.7]]  # seed 2 of task a left out
    stats = aggregate_scopes(normalised, {"a": "g", "b": "g"}, ["m"], ["eval_out"], reps=REPS, seed=0)
    assert stats["all"]["eval_out"]["m"]["runs"] == 2 and stats["all"]["eval_out"]["m"]["most_runs"] == 3
    assert stats["g"]["eval_out"]["m"]["value"] == pytest.approx((0.2 + 0.3) / 2)  # middle two of .1 .2 .3 .7


def test_groups_and_method_order():
    groups = task_groups(["di", "ode", "walker", "mine", "declared"], {"declared": "overlapping"})
    assert groups == {
        "di": "non-overlapping",
        "ode": "weakly non-overlapping",
        "walker": "overlapping",
        "mine": "ungrouped",
        "declared": "overlapping",
    }
    order = method_order(["dmash", "zeta", "dma", "concat", "dr", "dmash_nomask"], ("dr", "concat"))
    assert order == ["dr", "concat", "dma", "dmash", "dmash_nomask", "zeta"]


# --- a tiny grid, end to end ---------------------------------------------------------------------

# Final eval_out AER per seed (4 seeds: the IQM is the mean of the middle two). The first evaluation
# scores 0 everywhere, so reading any other evaluation than the last would change every number.
# reacher_easy gets user bounds [0, 100]; hopper_gym has none (min / max of the grid). Sorted by name
# hopper_gym comes first, by group last: tables must follow the groups.
FINAL = {
    "reacher_easy": {"dr": [10, 20, 30, 40], "concat": [20, 30, 40, 50], "dmash": [50, 60, 70, 80]},
    "hopper_gym": {"dr": [100, 200, 300, 400], "dmash": [500, 600, 700, 800]},
}
TRAIN_OFFSET = {"reacher_easy": 5.0, "hopper_gym": 0.0}  # train = eval_out + offset; eval_in = eval_out
GROUP = {"reacher_easy": "non-overlapping", "hopper_gym": "overlapping"}


def write_run(root: Path, task: str, method: str, seed: int, final: dict[str, float], nested: bool = False) -> None:
    """One run's eval.json in the lead's format: two evaluations, 4 contexts per split.

    `nested`: where a single-seed grid job writes it, `seed<k>/seed<k>/eval.json`.
    """
    contexts = 4

    def split(aer: float) -> dict:
        per_context = [aer] * contexts
        return {
            "aer": aer,
            "per_context": per_context,
            "returns": [[aer, aer] for aer in per_context],
            "contexts": [[1.0, -1.0 if i % 2 else 1.0] for i in range(contexts)],
        }

    evaluations = [
        {"updates": 0, "env_frames": 1000, "splits": {name: split(0.0) for name in final}},
        {"updates": 500, "env_frames": 11000, "splits": {name: split(aer) for name, aer in final.items()}},
    ]
    run = root / task / method / f"seed{seed}"
    run = run / run.name if nested else run
    run.mkdir(parents=True)
    write_fake_eval(run, evaluations, task=task, method=method, seed=seed, group=GROUP.get(task, ""))


def write_tiny_grid(root: Path) -> None:
    for task, methods in FINAL.items():
        for method, values in methods.items():
            for seed, value in enumerate(values):
                final = {"train": value + TRAIN_OFFSET[task], "eval_in": float(value), "eval_out": float(value)}
                write_run(root, task, method, seed, final, nested=(task, seed) == ("hopper_gym", 3))


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("grid")
    write_tiny_grid(root)
    (root / "reacher_easy" / "dma" / "seed0").mkdir(parents=True)  # a run that has not evaluated yet is left out
    write_fake_eval(root / "reacher_easy" / "dma" / "seed0", [], task="reacher_easy", method="dma")
    return root, aggregate_grid(root, reps=50, bounds={"reacher_easy": (0.0, 100.0)})


def test_collect_reads_the_last_evaluation_and_aligns_curves(tiny_grid):
    root, _ = tiny_grid
    runs = collect(root)
    assert set(runs) == {"reacher_easy", "hopper_gym"} and set(runs["reacher_easy"]) == {"dr", "concat", "dmash"}
    assert final_scores(runs)["reacher_easy"]["dmash"]["eval_out"] == {0: 50.0, 1: 60.0, 2: 70.0, 3: 80.0}
    assert final_scores(runs)["hopper_gym"]["dmash"]["eval_out"][3] == 800.0  # seed3/seed3/eval.json
    updates, aer = curves(runs["reacher_easy"]["dr"], "train")
    assert updates.tolist() == [0, 500]
    np.testing.assert_allclose(aer, [[0, 15], [0, 25], [0, 35], [0, 45]])


def test_tiny_grid_task_tables(tiny_grid):
    _, summary = tiny_grid
    assert list(summary["tasks"]) == ["reacher_easy", "hopper_gym"]  # in group order
    reacher = summary["tasks"]["reacher_easy"]
    assert reacher["group"] == "non-overlapping" and reacher["bounds"]["source"] == "override"
    assert (reacher["bounds"]["low"], reacher["bounds"]["high"]) == (0.0, 100.0)
    assert list(reacher["methods"]) == ["dr", "concat", "dmash"]  # baselines first
    dmash = reacher["methods"]["dmash"]["eval_out"]
    assert dmash["seeds"] == [0, 1, 2, 3] and dmash["mean"] == 65.0 and dmash["iqm"] == 65.0
    assert dmash["std"] == pytest.approx(np.std([50, 60, 70, 80]))
    assert dmash["normalised"]["value"] == pytest.approx(0.65)
    assert reacher["methods"]["dr"]["train"]["iqm"] == 30.0  # 15 25 35 45
    gym = summary["tasks"]["hopper_gym"]
    assert gym["bounds"]["source"] == "data" and (gym["bounds"]["low"], gym["bounds"]["high"]) == (100.0, 800.0)
    assert gym["methods"]["dr"]["eval_out"]["normalised"]["value"] == pytest.approx(3 / 14)  # (200 + 300) / 2


def test_tiny_grid_normalised_aggregates_poi_and_gains(tiny_grid):
    _, summary = tiny_grid
    out = {scope: by_split["eval_out"] for scope, by_split in summary["aggregates"].items()}
    assert list(out) == ["all", "non-overlapping", "overlapping"]
    # dr over both tasks: .1 .2 .3 .4 and 0 1/7 2/7 3/7; the middle four are 1/7 .2 2/7 .3
    dr_all = (1 / 7 + 0.2 + 2 / 7 + 0.3) / 4
    dmash_all = (0.6 + 0.7 + 5 / 7 + 0.8) / 4  # .5 .6 .7 .8 and 4/7 5/7 6/7 1
    assert out["all"]["dr"]["value"] == pytest.approx(dr_all)
    assert out["all"]["dmash"]["value"] == pytest.approx(dmash_all)
    assert out["all"]["concat"]["tasks"] == ["reacher_easy"]  # concat ran on reacher_easy only
    assert out["overlapping"]["dmash"]["value"] == pytest.approx(11 / 14)
    for stats in out["all"].values():
        assert stats["ci"][0] <= stats["value"] <= stats["ci"][1]

    poi = summary["improvement"]["eval_out"]
    assert poi["dr"]["value"] == 1.0 and poi["dr"]["tasks"] == ["hopper_gym", "reacher_easy"]
    assert poi["concat"]["value"] == pytest.approx(15.5 / 16)  # one tie (50 vs 50) in 16 pairs

    vs_dr = summary["gains"]["dr"]["normalised"]
    assert vs_dr["all"]["eval_out"]["dmash"] == pytest.approx((dmash_all - dr_all) / dr_all)
    assert vs_dr["non-overlapping"]["eval_out"]["concat"] == pytest.approx(0.4)  # (.35 - .25) / .25
    assert vs_dr["all"]["eval_out"]["concat"] is None  # different tasks: not comparable
    vs_concat = summary["gains"]["concat"]["normalised"]
    assert vs_concat["non-overlapping"]["eval_out"]["dmash"] == pytest.approx(0.3 / 0.35)
    assert summary["gains"]["dr"]["raw"]["hopper_gym"]["eval_out"]["dmash"] == pytest.approx(1.6)  # 650 vs 250


def test_tiny_grid_writes_markdown_json_and_plots(tiny_grid):
    root, summary = tiny_grid
    assert json.loads((root / "results.json").read_text()) == json.loads(json.dumps(summary))
    table = (root / "results.md").read_text()
    assert "| dmash | 4 | 70.0 ± 11.2 | 65.0 ± 11.2 | 65.0 ± 11.2 |" in table  # reacher_easy: mean ± std per split
    assert "| dmash | 70.0 [" in table  # IQM [CI] of reacher_easy train
    assert "| dmash | +203.1% | +160.0% | +266.7% |" in table  # normalised gains vs dr: all, groups
    assert "| dmash vs | eval_out |\n|---|---|\n| dr | 1.00 [1.00, 1.00] |" in table  # PoI, eval_out by default
    per_task = "| vs | reacher_easy eval_out | hopper_gym eval_out |\n|---|---|---|\n| dr | 1.00 [1.00, 1.00] | 1.00"
    assert per_task in table and "| concat | 0.97 [" in table and "] | – |" in table  # concat: reacher_easy only
    assert "no natural bound" in table and "given by the user" in table
    rows = [line for line in table.splitlines() if line.startswith(("| dmash | 0.704 [", "| concat | 0.350 ["))]
    assert rows and all(("†" in row) == row.startswith("| concat") for row in rows)  # † where tasks are missing
    for name in (
        "curves_reacher_easy.png",
        "curves_hopper_gym.png",
        "intervals_reacher_easy.png",
        "intervals_normalised_all.png",
        "intervals_normalised_non-overlapping.png",
        "improvement.png",
    ):
        assert (root / name).stat().st_size > 1000, name


def test_aggregate_cli_errors_in_one_line(tmp_path, capsys):
    assert aggregate_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "eval.json" in err


@pytest.mark.integration
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).stem)
def test_every_shipped_config_parses(config, capsys):
    from lit_dmash.cli import main  # here, so the statistics tests above do not import the whole stack

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", config, "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "method:" in capsys.readouterr().out


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_every_shipped_grid_is_valid(grid):
    spec = GridSpec.load(grid)
    cells = sorted((job.task, job.variant, seed) for job in spec.jobs() for seed in job.seeds)
    assert cells == sorted(itertools.product(spec.tasks, spec.methods, spec.seeds))  # each cell once


def test_method_colours_fix_the_paper_arms_and_give_other_methods_distinct_colours():
    import seaborn as sns

    from lit_dmash.analysis.plots import ARM_COLOURS, method_colours
    from lit_dmash.names import PAPER_ARMS

    palette = sns.color_palette("colorblind", n_colors=10)
    assert sorted(ARM_COLOURS) == sorted(PAPER_ARMS) and len(set(ARM_COLOURS.values())) == len(PAPER_ARMS)
    seven = method_colours(list(PAPER_ARMS))
    assert seven["dmash"] == palette[3] and seven["dr"] == palette[7]  # vermillion and grey, as documented
    assert method_colours(["dmash", "dmash_no_masking"])["dmash"] == seven["dmash"]  # whichever others are shown
    assert method_colours(["concat", "dr"]) == {"concat": seven["concat"], "dr": seven["dr"]}
    ten = method_colours([*PAPER_ARMS, "a", "b", "c"])
    assert len(set(ten.values())) == 10 and ten["a"] == palette[9]  # others take the spare colours first
    assert len(set(method_colours([f"m{i}" for i in range(10)]).values())) == 10
