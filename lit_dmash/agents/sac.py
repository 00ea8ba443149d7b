"""SAC pieces, one small factory each, composed from TorchRL (in the style of its sota scripts)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate

from lit_dmash.config import SACConfig


class ConcatMLP(nn.Module):
    """An MLP over the concatenation of its inputs (observation, context, action, ...)."""

    def __init__(self, in_features: int, out_features: int, hidden_dims: Sequence[int]) -> None:
        super().__init__()
        self.mlp = MLP(
            in_features=in_features, out_features=out_features, num_cells=list(hidden_dims), activation_class=nn.ReLU
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat(inputs, dim=-1))


class GaussianPolicyHead(nn.Module):
    """Inputs -> (loc, scale) of a Gaussian over pre-tanh actions."""

    def __init__(self, in_features: int, action_dim: int, hidden_dims: Sequence[int]) -> None:
        super().__init__()
        self.mlp = ConcatMLP(in_features, 2 * action_dim, hidden_dims)
        self.extract = NormalParamExtractor(scale_mapping="biased_softplus_1.0", scale_lb=0.1)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.extract(self.mlp(*inputs))


def make_actor(
    input_keys: Sequence[str], input_dim: int, action_spec: TensorSpec, hidden_dims: Sequence[int]
) -> ProbabilisticActor:
    """Tanh-Gaussian policy reading `input_keys`; `action_spec` is the unbatched action spec."""
    head = GaussianPolicyHead(input_dim, action_spec.shape[-1], hidden_dims)
    module = TensorDictModule(head, in_keys=list(input_keys), out_keys=["loc", "scale"])
    return ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        spec=action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
        return_log_prob=False,
    )


def make_qvalue(
    input_keys: Sequence[str], input_dim: int, action_dim: int, hidden_dims: Sequence[int]
) -> ValueOperator:
    """Q(s, a) reading `input_keys` and the action; SACLoss makes the twin copies."""
    return ValueOperator(ConcatMLP(input_dim + action_dim, 1, hidden_dims), in_keys=[*input_keys, "action"])


def make_sac_loss(actor: ProbabilisticActor, qvalue: ValueOperator, action_spec: TensorSpec, cfg: SACConfig) -> SACLoss:
    """Twin-Q SAC with automatic entropy tuning (target entropy `-action_dim`)."""
    loss = SACLoss(
        actor_network=actor,
        qvalue_network=qvalue,
        num_qvalue_nets=2,
        loss_function="l2",
        alpha_init=cfg.alpha_init,
        action_spec=action_spec,
        delay_actor=False,
        delay_qvalue=True,
    )
    loss.make_value_estimator(gamma=cfg.gamma)
    # Materialise the lazily created target-entropy buffer now, or resuming a checkpoint fails
    # on a state-dict key the fresh module does not have yet (see shared/PITFALLS.md).
    _ = loss.target_entropy
    return loss


def make_target_updater(loss: SACLoss, tau: float) -> SoftUpdate:
    return SoftUpdate(loss, tau=tau)


def make_optimizer(loss: SACLoss, cfg: SACConfig) -> torch.optim.Adam:
    """One Adam with a param group per role.

    Adam is per-parameter, so this equals three optimisers; but one `optimizer.step()` per update
    keeps Lightning's `global_step` equal to the number of updates (with three optimisers it
    counts three per update; Lightning issue 17958).
    """
    return torch.optim.Adam(
        [
            {"params": list(loss.actor_network_params.values(True, True)), "lr": cfg.lr_actor, "name": "actor"},
            {"params": list(loss.qvalue_network_params.values(True, True)), "lr": cfg.lr_critic, "name": "critic"},
            {"params": [loss.log_alpha], "lr": cfg.lr_alpha, "name": "alpha"},
        ]
    )
