"""`DirectSACLoss` is TorchRL's `SACLoss` math on SACLoss's own parameters, only faster.

On a fixed batch and seed its losses and gradients equal SACLoss's to 1e-5 (they agree to the
last bit on this machine, the tolerance covers other BLAS builds); a fixed-seed fit with either
implementation ends with the same weights and evaluation returns.
"""

import lightning as L
import pytest
import torch
from conftest import collected_batch
from tensordict import TensorDict
from torch.func import functional_call, stack_module_state

from lit_dmash.agents.direct_sac import DirectSACLoss
from lit_dmash.agents.sac import policy_head
from lit_dmash.config import CollectorConfig, ContextConfig, EnvConfig, SACConfig
from lit_dmash.module import ContextualSAC
from lit_dmash.nets import AdaptedMLP, AdapterShape

TOL = 1e-5
CASES = [
    ("dr", {}),
    ("oracle", {}),
    ("dma", {}),
    ("dmash", {}),
    ("dmash", {"adapter_kind": "lowrank"}),
    ("dmash", {"adapter_kind": "full", "adapter_layer": 1}),
    ("dmash_separate", {}),
    ("dmash_rlgrad", {}),
]


def tiny_module(method: str, loss_impl: str = "direct", **context) -> ContextualSAC:
    return ContextualSAC(
        method=method,
        env=EnvConfig(num_envs=4),
        collector=CollectorConfig(frames_per_batch=16, total_frames=160, init_random_frames=32),
        sac=SACConfig(hidden_dims=[32, 32], batch_size=32, loss_impl=loss_impl),
        context=ContextConfig(history_len=4, encoder_hidden=[16], hypernet_hidden=[16], **context),
    )


def losses_and_grads(module: ContextualSAC, batch: TensorDict, sac_losses) -> tuple[dict, list]:
    """SAC (and dynamics) losses on `batch` under a fixed seed, and every parameter's gradient."""
    sample = batch.clone()
    torch.manual_seed(1)
    losses = {}
    if module.context_model is not None:
        losses["loss_dynamics"] = module.context_model.prepare_batch(sample, 0.2, 0.1)[0]
    losses.update(sac_losses(sample))
    module.zero_grad(set_to_none=True)
    sum(value for key, value in losses.items() if key.startswith("loss_")).backward()
    grads = [p.grad.clone() if p.grad is not None else None for p in module.parameters()]
    return {key: value.detach() for key, value in losses.items()}, grads


@pytest.mark.parametrize(("method", "context"), CASES)
def test_losses_and_gradients_equal_torchrl_sacloss(method, context):
    module = tiny_module(method, **context)
    batch = collected_batch(module)
    with torch.no_grad():  # away from init: alpha != 1 and target critics != critics
        module.loss_module.log_alpha.fill_(-0.7)
        for target in module.loss_module.target_qvalue_network_params.values(True, True):
            target.add_(0.05 * torch.randn_like(target))

    expected, expected_grads = losses_and_grads(module, batch, lambda s: dict(module.loss_module(s).items()))
    direct, direct_grads = losses_and_grads(module, batch, module.direct_loss)

    assert set(direct) == set(expected)
    for key in expected:
        torch.testing.assert_close(direct[key], expected[key], rtol=TOL, atol=TOL, msg=key)
    assert sum(g is not None for g in expected_grads) > 10
    for name, g_direct, g_expected in zip(
        [n for n, _ in module.named_parameters()], direct_grads, expected_grads, strict=True
    ):
        assert (g_direct is None) == (g_expected is None), name
        if g_expected is not None:
            torch.testing.assert_close(g_direct, g_expected, rtol=TOL, atol=TOL, msg=name)


@pytest.mark.parametrize("source", ["none", "params", "z"])
def test_forward_ensemble_equals_each_member(source):
    torch.manual_seed(0)
    shape = AdapterShape("lowrank", width=16, rank=2) if source != "none" else None
    members = [
        AdaptedMLP(5, 3, [16, 16], adapter=shape, adapter_source=source, z_dim=4, hypernet_hidden=[8]) for _ in range(3)
    ]
    for member in members:  # move the hypernetworks off their identity init
        for p in member.parameters():
            p.data.add_(0.1 * torch.randn_like(p))
    params, _ = stack_module_state(members)
    x = torch.randn(7, 5)
    inputs = [x] if source == "none" else [x, torch.randn(7, shape.num_params if source == "params" else 4)]
    out = members[0].forward_ensemble(params, *inputs)
    assert out.shape == (3, 7, 3)
    for i, member in enumerate(members):
        expected = functional_call(members[0], {k: v[i] for k, v in params.items()}, tuple(inputs))
        torch.testing.assert_close(out[i], expected)
        torch.testing.assert_close(out[i], member(*inputs))


def test_direct_loss_refuses_sacloss_settings_it_does_not_implement():
    module = tiny_module("dr")
    module.loss_module.skip_done_states = True
    with pytest.raises(ValueError, match="skip_done_states"):
        DirectSACLoss(
            module.loss_module, policy_head(module.actor), ["observation"], AdaptedMLP(3, 1, [4]), module.action_spec
        )


@pytest.mark.parametrize("method", ["dr", "dmash"])
def test_fixed_seed_fit_ends_the_same_with_either_implementation(method, tmp_path):
    """The end-to-end check behind `loss_impl=direct` as the default: same run, same result."""
    finals = {}
    for impl in ("torchrl", "direct"):
        module = tiny_module(method, loss_impl=impl)
        trainer = L.Trainer(
            max_epochs=-1,
            default_root_dir=tmp_path / impl,
            enable_progress_bar=False,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(module)
        assert module.updates == (160 - 32) // 16 + 1
        weights = torch.cat([p.detach().flatten() for p in module.parameters()])
        finals[impl] = (weights, module.evaluate("eval_out", episodes=4, seed=0))
    torch.testing.assert_close(finals["direct"][0], finals["torchrl"][0], rtol=TOL, atol=TOL)
    torch.testing.assert_close(finals["direct"][1], finals["torchrl"][1], rtol=1e-4, atol=1e-4)
