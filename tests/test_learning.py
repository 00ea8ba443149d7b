"""SAC learns: a real Trainer, a real collector, a real env, a stated threshold."""

import lightning as L

from callbacks import ZeroShotEvaluation
from lit_dmash.config import CollectorConfig, EnvConfig, SACConfig
from lit_dmash.module import ContextualSAC

# Budget: 8,000 env frames, ~1,900 updates; about 20 s on 2 cores. Doing nothing scores about
# -38 on this task (mean distance ~0.77 over 50 steps); a good controller about -6.
THRESHOLD = -15.0


def test_sac_learns_a_single_non_inverted_context(tmp_path, data_dir):
    module = ContextualSAC(
        method="dr",
        env=EnvConfig(num_envs=4, context_file=str(data_dir / "di_friction_single.yaml")),
        collector=CollectorConfig(frames_per_batch=32, total_frames=8000, init_random_frames=500),
        sac=SACConfig(
            hidden_dims=[64, 64], batch_size=128, utd=8, alpha_init=0.1, lr_actor=1e-3, lr_critic=1e-3, lr_alpha=1e-3
        ),
        seed=0,
    )
    evaluation = ZeroShotEvaluation(every_n_frames=0, episodes=32)
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_checkpointing=False,
        callbacks=[evaluation],
    )
    trainer.fit(module)
    assert module.env_frames == 8000
    final = evaluation.history[-1]["splits"]["train"]["mean"]
    assert final > THRESHOLD, f"final eval return {final:.1f} <= {THRESHOLD}"
