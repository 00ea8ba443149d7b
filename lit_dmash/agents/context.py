"""Context inference: the parts trained only by the dynamics loss (encoder E, hypernetwork H, model f).

Per update, `prepare_batch` reads the window stored with each sampled transition, derives the
window one step later, embeds both in one encoder call, generates the adapters, computes the
dynamics loss, and writes the conditioning (`z` or the adapter) into the batch *detached*: the
SAC losses (TorchRL's `SACLoss`, or `DirectSACLoss` on its parameters) then train the actor and
critics on it without any gradient reaching E or H. (E and H cannot live inside the SAC
actor/critic modules: SACLoss re-initialises a module shared by both into independent copies;
see shared/PITFALLS.md.)
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from lit_dmash.config import ContextConfig
from lit_dmash.envs.history import shift_window, transition_entry
from lit_dmash.methods import Method
from lit_dmash.nets import AdaptedMLP, AdapterShape, HyperNetwork, RunningNorm, SetEncoder, drop_entries, drop_features


class ContextModel(nn.Module):
    """Normaliser, encoder, (shared) hypernetwork and dynamics model of one context method."""

    def __init__(self, method: Method, obs_dim: int, action_dim: int, cfg: ContextConfig, sac_hidden: list[int]):
        super().__init__()
        self.method, self.cfg = method, cfg
        self.obs_dim, self.action_dim = obs_dim, action_dim
        entry_dim = 2 * obs_dim + action_dim
        self.normalizer = RunningNorm(entry_dim)
        output_norm = cfg.output_norm if method.normalize else "none"
        self.encoder = SetEncoder(entry_dim, cfg.encoder_hidden, cfg.z_dim, output_norm)
        self.adapter_shape = (
            AdapterShape(cfg.adapter_kind, cfg.width(sac_hidden), cfg.adapter_rank) if method.uses_adapter else None
        )
        # One hypernetwork: shared by all four networks, or (separate ablation) the dynamics model's own.
        self.hypernet = (
            HyperNetwork(cfg.z_dim, self.adapter_shape, cfg.hypernet_hidden) if method.uses_adapter else None
        )
        concat_z = 0 if method.uses_adapter else cfg.z_dim
        self.dynamics = AdaptedMLP(
            obs_dim + action_dim + concat_z,
            obs_dim,
            cfg.dynamics_widths(sac_hidden),
            adapter=self.adapter_shape,
            adapter_layer=cfg.adapter_layer,
            adapter_source="params" if method.uses_adapter else "none",
        )

    # -- pieces ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update_normalizer(self, data: TensorDictBase) -> None:
        """Fold freshly collected transitions into the running statistics (training only).

        `data` may sit on the collector's storing device (CPU) while the model is on a GPU.
        """
        entry = transition_entry(data["observation"], data["action"], data["next", "observation"])
        self.normalizer.update(entry.to(self.normalizer.mean.device))

    def embed(
        self, window: torch.Tensor, mask: torch.Tensor, p_mask: float = 0.0, p_feature: float = 0.0
    ) -> torch.Tensor:
        """`z` from a window; updates pass `p_mask`/`p_feature` > 0 to drop entries/features at random.

        Masking is an explicit argument, not `self.training`: Lightning keeps the module in train
        mode while the collector acts, and acting must see the whole window.
        """
        if self.method.normalize:
            window = self.normalizer(window)
        mask = drop_entries(mask, p_mask)
        window = drop_features(window, p_feature)
        return self.encoder(window, mask)

    def conditioning(self, z: torch.Tensor) -> torch.Tensor:
        """What the actor and critics read: the shared adapter's parameters, or `z` itself."""
        if self.method.uses_adapter and self.method.shared_hypernet:
            return self.hypernet(z)
        return z

    def dynamics_condition(self, z: torch.Tensor) -> torch.Tensor:
        """What the dynamics model reads: adapter parameters from `hypernet` (shared, or its own in
        the `separate` ablation), or `z` itself for the concatenation methods."""
        return self.hypernet(z) if self.method.uses_adapter else z

    def dynamics_errors(self, data: TensorDictBase, condition: torch.Tensor) -> torch.Tensor:
        """Per-transition squared error of the predicted normalised `Δo`, averaged over features: `[B]`."""
        entry = self.normalizer(transition_entry(data["observation"], data["action"], data["next", "observation"]))
        inputs, target = entry.split([self.obs_dim + self.action_dim, self.obs_dim], dim=-1)
        return (self.dynamics(inputs, condition) - target).pow(2).mean(-1)

    def dynamics_loss(self, data: TensorDictBase, condition: torch.Tensor) -> torch.Tensor:
        """MSE of the predicted normalised `Δo` given adapter parameters (or `z`); trains f, H and E."""
        return self.dynamics_errors(data, condition).mean()

    # -- one update -----------------------------------------------------------------------------
    def prepare_batch(
        self, data: TensorDictBase, p_mask: float = 0.0, p_feature: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the conditioning for t and t+1 into `data`; return (dynamics loss, `z` at t).

        `p_mask` / `p_feature`: masking probabilities of window entries / features (updates only).

        One encoder call embeds the windows at t and t+1 together. The hypernetwork runs on t with
        gradient and on t+1 without: the adapter at t+1 only feeds SAC's bootstrap target, which
        is computed without gradient (backpropagating its rows was ~0.4 ms of a ~17 ms update).
        With a shared hypernetwork the dynamics model uses the very tensor (not detached) whose
        detached copy the actor and critics read.
        """
        window, mask = data["history"], data["history_mask"]
        entry = transition_entry(data["observation"], data["action"], data["next", "observation"])
        batch = window.shape[0]
        if p_feature > 0:  # feature masks differ per window: embed both windows in full
            next_window, next_mask = shift_window(window, mask, entry)
            z_both = self.embed(torch.cat([window, next_window]), torch.cat([mask, next_mask]), p_mask, p_feature)
        else:
            z_both = self._embed_t_and_next(window, mask, entry, p_mask)
        z, z_next = z_both[:batch], z_both[batch:]
        condition = self.conditioning(z)
        with torch.no_grad():
            next_condition = self.conditioning(z_next)
        if self.method.uses_adapter and not self.method.shared_hypernet:
            dynamics_condition = self.dynamics_condition(z)  # separate: the dynamics model's own hypernetwork
        else:
            dynamics_condition = condition
        loss = self.dynamics_loss(data, dynamics_condition)
        if not self.method.rl_grad:
            condition = condition.detach()
        key = self.method.conditioning_key
        data.set(key, condition)
        data.set(("next", key), next_condition)
        return loss, z

    def _embed_t_and_next(
        self, window: torch.Tensor, mask: torch.Tensor, entry: torch.Tensor, p_mask: float
    ) -> torch.Tensor:
        """`z` of the windows at t and t+1, `[2B, z]`, with `phi` run once per distinct entry.

        The window at t+1 is the window at t shifted by one entry (`shift_window`), so the K+1
        entries `[window, entry]` hold both: positions 0..K-1 are t's, 1..K are t+1's. Entry
        dropping stays independent per window. Equal to `embed` on both windows (tested to 1e-5)
        at 17/32 of its encoder cost.
        """
        entries = torch.cat([window, entry.unsqueeze(-2)], dim=-2)
        if self.method.normalize:
            entries = self.normalizer(entries)
        features = self.encoder.phi(entries)
        next_mask = torch.cat([mask[..., 1:], torch.ones_like(mask[..., :1])], dim=-1)
        z = self.encoder.pool(features[..., :-1, :], drop_entries(mask, p_mask))
        z_next = self.encoder.pool(features[..., 1:, :], drop_entries(next_mask, p_mask))
        return torch.cat([z, z_next])

    def policy_module(self) -> TensorDictModule:
        """history -> conditioning, for acting: no masking; the normaliser is only read."""
        return TensorDictModule(
            _Conditioning(self), in_keys=["history", "history_mask"], out_keys=[self.method.conditioning_key]
        )


class _Conditioning(nn.Module):
    def __init__(self, context: ContextModel) -> None:
        super().__init__()
        self.context = context

    def forward(self, window: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.context.conditioning(self.context.embed(window, mask))
