"""SACLoss's math on the parameters TorchRL's `SACLoss` owns, without its TensorDict plumbing.

Why this exists (a workaround, measured): at our sizes (256x256 MLPs, batch 256, one CPU thread)
TorchRL 0.14's `SACLoss` spends ~12.6 ms per update, of which ~5 ms are matrix products; the rest
is TensorDict bookkeeping around the networks (`to_module`, `select`, vmap over TensorDicts,
~100 small copies). The same math on plain tensors, with the twin critics as one `baddbmm` per
layer, takes ~8 ms (`bench/throughput.py`). `torch.compile` did not help here: with inductor on
this CPU the compiled update ran at 16.6-17.8 ms after 20-35 s of compilation.

`SACLoss` stays the owner of everything that has state: the actor's parameters, the stacked twin
critics and their targets, `log_alpha`, the target entropy and gamma; the optimiser's param
groups, `SoftUpdate` and checkpoints are unchanged. This class only evaluates SACLoss (v2: no
value network, TD(0) targets, `l2` critic loss summed over the critics) on them, drawing random
numbers in SACLoss's order (next action first, then the policy action), so on a fixed batch and
seed its losses and gradients equal SACLoss's (`tests/test_direct_sac.py`, to 1e-5).
`sac.loss_impl=torchrl` runs `SACLoss` itself.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.data import TensorSpec
from torchrl.modules import TanhNormal
from torchrl.objectives import SACLoss
from torchrl.objectives.sac import compute_rsample_log_prob

from lit_dmash.agents.sac import GaussianPolicyHead
from lit_dmash.nets import AdaptedMLP


class DirectSACLoss:
    """Callable `batch -> {loss_actor, loss_qvalue, loss_alpha, alpha, entropy}`, as `SACLoss` returns.

    Args:
        loss: The `SACLoss` whose parameters (and hyperparameters) are used.
        policy_head: The actor's network (inputs -> loc, scale); its parameters are the actor's.
        actor_in_keys: Batch keys the actor reads, in order.
        qvalue: One critic network, for its structure: the parameters come stacked from `loss`.
        action_spec: Unbatched action spec (the bounds of the tanh-Gaussian).
    """

    def __init__(
        self,
        loss: SACLoss,
        policy_head: GaussianPolicyHead,
        actor_in_keys: list[str],
        qvalue: AdaptedMLP,
        action_spec: TensorSpec,
    ) -> None:
        if loss._version != 2 or loss.loss_function != "l2" or loss.skip_done_states:
            raise ValueError("DirectSACLoss implements SACLoss v2 with loss_function='l2' and skip_done_states=False")
        if loss.min_log_alpha is not None or loss.max_log_alpha is not None:
            raise ValueError("DirectSACLoss does not clamp alpha: build SACLoss without min_alpha/max_alpha")
        if not hasattr(qvalue, "forward_ensemble"):
            raise TypeError(
                f"the critic network {type(qvalue).__name__} has no forward_ensemble (AdaptedMLP has): "
                "use sac.loss_impl=torchrl for other critics"
            )
        self.loss, self.policy_head, self.qvalue = loss, policy_head, qvalue
        self.actor_in_keys = list(actor_in_keys)
        self.qvalue_in_keys = list(loss.qvalue_network.in_keys)
        self._bounds = (action_spec.space.low, action_spec.space.high)

    def __call__(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        loss = self.loss
        alpha = loss.log_alpha.detach().exp()
        critics = _flat(loss.qvalue_network_params)
        nxt = batch.get("next")

        # Critic targets: TD(0) on the target critics, min over the twins, entropy bonus.
        with torch.no_grad():
            next_action, next_log_prob = self._act(nxt)
            next_q = self._critics(nxt, next_action, _flat(loss.target_qvalue_network_params))
            next_value = (next_q - alpha * next_log_prob).min(0).values
            not_terminated = (~nxt.get("terminated").squeeze(-1)).int()
            target = nxt.get("reward").squeeze(-1) + loss.value_estimator.gamma * not_terminated * next_value
        loss_qvalue = (self._critics(batch, batch.get("action"), critics) - target).pow(2).sum(0).mean()

        # Actor: reparameterised action through the critics, whose parameters it must not train.
        action, log_prob = self._act(batch)
        frozen = {name: value.detach() for name, value in critics.items()}
        q_policy = self._critics(batch, action, frozen).min(0).values
        loss_actor = (alpha * log_prob - q_policy).mean()
        log_prob = log_prob.detach()
        loss_alpha = (-loss.log_alpha * (log_prob + loss.target_entropy)).mean()
        return {
            "loss_actor": loss_actor,
            "loss_qvalue": loss_qvalue,
            "loss_alpha": loss_alpha,
            "alpha": alpha,
            "entropy": -log_prob.mean(),
        }

    def _act(self, data: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised tanh-Gaussian action and its log-probability (as the actor samples)."""
        loc, scale = self.policy_head(*(data.get(key) for key in self.actor_in_keys))
        if self._bounds[0].device != loc.device:  # moved once, not per update
            self._bounds = tuple(bound.to(loc.device) for bound in self._bounds)
        low, high = self._bounds
        return compute_rsample_log_prob(TanhNormal(loc, scale, low=low, high=high))

    def _critics(self, data: TensorDictBase, action: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Both critics' Q(s, a): `[num_critics, B]`."""
        inputs = [action if key == "action" else data.get(key) for key in self.qvalue_in_keys]
        return self.qvalue.forward_ensemble(params, *inputs).squeeze(-1)


def _flat(params: TensorDictBase) -> dict[str, torch.Tensor]:
    """SACLoss's stacked critic parameters under the critic network's own names (`hidden.0.weight`)."""
    return {".".join(key[1:]): value for key, value in params.items(True, True)}
