"""Every notebook runs top to bottom on tiny data, and is stored without outputs."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import REPO, quiet_trainer, tiny_module, write_fake_eval
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _execute(name: str, monkeypatch, **env: str) -> nbformat.NotebookNode:
    for key, value in {"OMP_NUM_THREADS": "1", "RL_WARNINGS": "0", "MPLBACKEND": "Agg", **env}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    return notebook


def _outputs_text(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.mark.integration
def test_quickstart_notebook_trains_and_evaluates(monkeypatch):
    notebook = _execute("quickstart.ipynb", monkeypatch, LIT_DMASH_NOTEBOOK_SMOKE="1")
    text = _outputs_text(notebook)
    assert "{'dmash': {'train':" in text and "'dr': {'train':" in text and "'eval_out':" in text
    for method in ("dmash", "dr"):  # each arm's run in its own folder, evaluated at 1, 6 and 11 updates
        record = json.loads((REPO / "runs" / "notebook_quickstart" / method / "seed0" / "eval.json").read_text())
        assert record["task"] == "ode" and [e["updates"] for e in record["evaluations"]][-3:] == [1, 6, 11]


def _tiny_grid(root, returns: dict[str, list[float]]) -> None:
    """A grid folder in the eval.json format: per method and seed two evaluations on three splits.

    The first evaluation scores half the final AER, so a notebook that read any but the last would
    print other numbers.
    """
    for method, per_seed in returns.items():
        for seed, value in enumerate(per_seed):
            run = root / "di_friction" / method / f"seed{seed}"
            run.mkdir(parents=True)
            evaluations = [
                {
                    "updates": updates,
                    "env_frames": 100_000 + 20 * updates,
                    "splits": {
                        split: {"aer": value * scale, "per_context": [value * scale] * 2, "returns": [], "contexts": []}
                        for split in ("train", "eval_in", "eval_out")
                    },
                }
                for updates, scale in ((0, 0.5), (50, 1.0))
            ]
            write_fake_eval(run, evaluations, task="di_friction", method=method, seed=seed, group="overlapping")


@pytest.mark.integration
def test_results_notebook_builds_the_table_and_plots(tmp_path, monkeypatch):
    # 3 seeds: the IQM keeps all three, so it is the mean; bounds [0, 100] make it / 100 the normalised score.
    _tiny_grid(tmp_path, {"dr": [40.0, 50.0, 60.0], "dmash": [70.0, 80.0, 90.0]})
    notebook = _execute("results.ipynb", monkeypatch, LIT_DMASH_GRID_DIR=str(tmp_path), LIT_DMASH_REPS="100")
    text = _outputs_text(notebook)
    assert "dr on eval_out: normalised IQM 0.500 [" in text
    assert "dmash on eval_out: normalised IQM 0.800 [" in text and "; gain vs dr +60.0%" in text
    assert "P(dmash > dr) on eval_out: 1.00 [1.00, 1.00]" in text
    table = (tmp_path / "results.md").read_text()
    assert "| dmash | 3 | 80.0 ± 8.2 | 80.0 ± 8.2 | 80.0 ± 8.2 |" in table  # mean ± std (ddof 0) per split
    assert "| dmash | 80.0 [" in table and "| dmash | +60.0% | +60.0% |" in table  # IQM; gain vs dr: all, group
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["tasks"]["di_friction"]["methods"]["dr"]["eval_out"]["aer"] == [40.0, 50.0, 60.0]
    for name in ("curves_di_friction.png", "intervals_di_friction.png", "intervals_normalised_all.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "improvement.png").is_file()
    assert "image/png" in json.dumps([o for c in notebook.cells if c.cell_type == "code" for o in c.outputs])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny DMA*-SH run on di."""
    root = tmp_path_factory.mktemp("notebook_run")
    module = tiny_module("dmash", total_steps=4)
    trainer = quiet_trainer(root)
    trainer.fit(module)
    checkpoint = root / "tiny.ckpt"
    trainer.save_checkpoint(checkpoint)
    return checkpoint


@pytest.mark.integration
def test_representations_notebook_reads_a_checkpoint(tiny_checkpoint, monkeypatch):
    notebook = _execute(
        "representations.ipynb", monkeypatch, LIT_DMASH_CHECKPOINT=str(tiny_checkpoint), LIT_DMASH_SAMPLES="4"
    )
    text = _outputs_text(notebook)
    assert "dmash di updates 5" in text
    assert "'diag/eval_out/informativeness':" in text and "within_mode" in text


@pytest.mark.integration
def test_watch_notebook_loads_rolls_out_and_records(tiny_checkpoint, monkeypatch):
    notebook = _execute("watch.ipynb", monkeypatch, LIT_DMASH_CHECKPOINT=str(tiny_checkpoint), LIT_DMASH_EPISODES="1")
    text = _outputs_text(notebook)
    assert "dmash di" in text and "mean return" in text and ".gif" in text
