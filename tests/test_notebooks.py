"""Every notebook runs top to bottom on tiny data, and is stored without outputs."""

from __future__ import annotations

import json

import lightning as L
import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

from callbacks import ZeroShotEvaluation
from lit_dmash.config import CollectorConfig, EnvConfig, SACConfig
from lit_dmash.module import ContextualSAC

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


def test_quickstart_notebook_trains_and_evaluates(monkeypatch):
    notebook = _execute("quickstart.ipynb", monkeypatch, LIT_DMASH_NOTEBOOK_SMOKE="1")
    text = _outputs_text(notebook)
    assert "'eval_out':" in text


def _tiny_grid(root, returns: dict[str, list[float]]) -> None:
    """A grid folder as `python -m lit_dmash grid` writes it: eval.json per method and seed."""
    for method, per_seed in returns.items():
        for seed, value in enumerate(per_seed):
            run = root / "di_friction" / method / f"seed{seed}" / "lightning_logs" / "version_0"
            run.mkdir(parents=True)
            evaluations = [
                {"env_frames": frames, "splits": {s: {"mean": value * scale} for s in ("train", "eval_out")}}
                for frames, scale in ((1000, 2.0), (2000, 1.0))
            ]
            (run / "eval.json").write_text(json.dumps({"evaluations": evaluations}))


def test_results_notebook_builds_the_table_and_plots(tmp_path, monkeypatch):
    _tiny_grid(tmp_path, {"dr": [-50.0, -40.0, -60.0], "dmash": [-12.0, -10.0, -14.0]})
    notebook = _execute("results.ipynb", monkeypatch, LIT_DMASH_GRID_DIR=str(tmp_path))
    table = (tmp_path / "results.md").read_text()
    assert "| dmash | eval_out | -12.0 |" in table and "+76.0%" in table  # (-12 - -50) / 50
    assert (tmp_path / "curves_di_friction.png").is_file() and (tmp_path / "intervals_di_friction.png").is_file()
    assert "image/png" in json.dumps([o for c in notebook.cells if c.cell_type == "code" for o in c.outputs])


def test_representations_notebook_reads_a_checkpoint(tmp_path, monkeypatch):
    module = ContextualSAC(
        method="dmash",
        env=EnvConfig(num_envs=4),
        collector=CollectorConfig(frames_per_batch=32, total_frames=192, init_random_frames=64),
        sac=SACConfig(hidden_dims=[16], batch_size=32),
    )
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        callbacks=[ZeroShotEvaluation(every_n_frames=0, episodes=2)],
    )
    trainer.fit(module)
    checkpoint = tmp_path / "last.ckpt"
    trainer.save_checkpoint(checkpoint)
    notebook = _execute(
        "representations.ipynb", monkeypatch, LIT_DMASH_CHECKPOINT=str(checkpoint), LIT_DMASH_EPISODES="4"
    )
    text = _outputs_text(notebook)
    assert "concentration" in text and "dmash" in text
