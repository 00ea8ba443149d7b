"""Fixed-seed tiny fits whose final weights pin what every arm's update computes.

`python tests/reference_fit.py` rewrites `tests/data/reference_weights.pt` from the code as it is;
`tests/test_speed_equivalence.py` fits again and compares. The file was written at commit f1fd66e,
before the update was made faster, so a faster form that changed the function would fail there.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from conftest import quiet_trainer

from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig, without_inert
from lit_dmash.methods import METHODS
from lit_dmash.module import ContextualSAC
from lit_dmash.nets.ensemble import EnsembleLinear

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_weights.pt"
CASES = [(method, "di") for method in sorted(METHODS)] + [("dmash", "ode"), ("dma_star", "ode"), ("da", "ode")]
SEEDS = (0, 3)  # two seeds in one batch: the stacked path


def fit_weights(method: str, task: str, root: Path) -> torch.Tensor:
    """The agent's floating-point state after a fixed-seed tiny fit (7 updates), as one vector in
    state-dict order with every linear weight laid out `[out, in]`."""
    L.seed_everything(0, verbose=False)
    module = ContextualSAC(
        method=method,
        env=EnvConfig(name=task, num_envs=2, contexts_per_split=2, horizon=6),
        protocol=ProtocolConfig(random_steps=12, total_steps=6, buffer_size=60),
        sac=SACConfig(hidden_dims=[8, 8], batch_size=8),
        context=without_inert(
            METHODS[method], ContextConfig(window=4, select_fraction=0.5, hypernet_hidden=[8, 8], model_dim=8)
        ),
        seeds=list(SEEDS),
    )
    quiet_trainer(root).fit(module)
    state = module.agent.state_dict()
    for name, layer in module.agent.named_modules():  # layout-independent: every weight as [out, in]
        if isinstance(layer, EnsembleLinear) and layer.transposed:
            state[f"{name}.weight"] = state[f"{name}.weight"].transpose(-1, -2)
    return torch.cat([v.reshape(-1) for v in state.values() if v.is_floating_point()])


if __name__ == "__main__":
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        weights = {f"{m}/{t}": fit_weights(m, t, Path(tmp) / f"{m}_{t}") for m, t in CASES}
    torch.save(weights, REFERENCE)
    print(f"wrote {REFERENCE} ({sum(w.numel() for w in weights.values())} numbers)")
