"""Neuron and block modules: shapes, sharing, IIM == EIM, state reset."""

import pytest
import torch

from bidl import (
    FCLIAF,
    FCLIF,
    LIAF,
    LIF,
    ConvLIAF,
    ConvLIF,
    ConvLIFPlus,
    FCLIFPlus,
    TemporalAggregation,
    reset_states,
    set_iteration_mode,
)


def test_lif_keeps_batch_first_shape():
    assert LIF()(torch.rand(2, 5, 3, 4, 4)).shape == (2, 5, 3, 4, 4)


def test_channel_sharing_parameters_are_shaped_per_channel():
    block = ConvLIF(2, 6, 3, sharing="channel", learnable=True)
    for name in ("alpha", "beta", "theta", "v_reset"):
        param = getattr(block.neuron, name)
        assert param.shape == (6,)
        assert param.requires_grad
    fc = FCLIF(12, 5, sharing="channel")
    assert fc.neuron.theta.shape == (5,)
    assert LIF().alpha.shape == ()


def test_channel_sharing_applies_each_channels_threshold():
    lif = LIF(sharing="channel", channels=2, theta=0.5)
    lif.theta.copy_(torch.tensor([0.5, 2.0]))
    x = torch.ones(1, 1, 2, 3, 3)
    y = lif(x)
    assert y[0, 0, 0].eq(1).all() and y[0, 0, 1].eq(0).all()


def test_fixed_parameters_are_buffers_and_learnable_ones_get_gradients():
    assert sum(p.numel() for p in LIF().parameters()) == 0
    lif = LIF(learnable=True)
    x = torch.randn(3, 6, 4)
    (lif(x) + 0).sum().backward()
    assert lif.alpha.grad is not None and lif.theta.grad is not None


@pytest.mark.parametrize("block_cls", [ConvLIF, ConvLIAF])
@pytest.mark.parametrize("sharing", ["all", "channel"])
@pytest.mark.parametrize("norm", ["state", "input", None])
def test_conv_blocks_iim_equals_eim(block_cls, sharing, norm):
    torch.manual_seed(0)
    block = block_cls(2, 4, 3, padding=1, pooling=2, sharing=sharing, norm=norm, reset="soft").double().eval()
    x = torch.rand(3, 6, 2, 8, 8, dtype=torch.float64)
    iim = block(x)
    set_iteration_mode(block, "external")
    eim = torch.stack([block(x[:, t]) for t in range(6)], 1)
    assert iim.shape == (3, 6, 4, 4, 4)
    assert torch.allclose(iim, eim, atol=1e-12)


@pytest.mark.parametrize("block_cls", [FCLIF, FCLIAF])
def test_fc_blocks_iim_equals_eim_and_flatten(block_cls):
    torch.manual_seed(0)
    block = block_cls(32, 5).double().eval()
    x = torch.randn(2, 4, 2, 4, 4, dtype=torch.float64)
    iim = block(x)
    set_iteration_mode(block, "external")
    eim = torch.stack([block(x[:, t]) for t in range(4)], 1)
    assert iim.shape == (2, 4, 5)
    assert torch.allclose(iim, eim, atol=1e-12)


def test_state_norm_runs_per_step_in_training_in_both_modes():
    torch.manual_seed(0)
    block = FCLIF(8, 4, norm="state").double()
    x = torch.randn(5, 3, 8, dtype=torch.float64)
    iim = block(x)
    set_iteration_mode(block, "external")
    eim = torch.stack([block(x[:, t]) for t in range(3)], 1)
    assert torch.equal(iim, eim)


def test_eim_state_persists_until_reset():
    lif = LIF(alpha=1.0, theta=1.5, iteration="external")
    x = torch.ones(1, 1)
    assert [lif(x).item() for _ in range(2)] == [0.0, 1.0]
    lif(x)
    reset_states(lif)
    assert lif(x).item() == 0.0


def test_eim_refuses_a_new_batch_shape_without_reset():
    lif = LIF(iteration="external")
    lif(torch.ones(2, 3))
    with pytest.raises(RuntimeError, match="reset_states"):
        lif(torch.ones(4, 3))


@pytest.mark.parametrize("mode", ["sum", "mean", "last"])
def test_temporal_aggregation_accumulator_matches_iim(mode):
    x = torch.randn(2, 5, 3)
    iim = TemporalAggregation(mode)(x)
    acc = TemporalAggregation(mode, iteration="external")
    for t in range(5):
        out = acc(x[:, t])
    assert torch.allclose(out, iim)
    acc.reset_state()
    assert acc.accumulator is None and acc.steps == 0


def test_liaf_rejects_unknown_options():
    with pytest.raises(ValueError, match="liaf_mode"):
        LIAF(liaf_mode="XX")
    with pytest.raises(ValueError, match="sharing"):
        LIF(sharing="layer")
    with pytest.raises(ValueError, match="channels"):
        LIF(sharing="channel")


def _norm_placement(block) -> str | None:
    if isinstance(block.neuron.norm, torch.nn.modules.batchnorm._BatchNorm):
        return "state"
    return "input" if isinstance(block.input_norm, torch.nn.modules.batchnorm._BatchNorm) else None


@pytest.mark.parametrize(
    ("build", "placement"),
    [
        # what trained best in tools/measure_norm_defaults.py (the table in bidl.layers' docstring)
        (lambda: FCLIF(8, 4), "input"),
        (lambda: FCLIAF(8, 4), "input"),
        (lambda: FCLIFPlus(8, 4), "input"),
        (lambda: ConvLIAF(2, 4, 3, 2, 1), "input"),
        (lambda: ConvLIF(2, 4, 3, 2, 1), None),
        (lambda: ConvLIFPlus(2, 4, 3, 2, 1), None),
    ],
)
def test_block_default_norm_placement(build, placement):
    block = build()
    assert _norm_placement(block) == placement
    for norm in ("state", "input", None):  # every placement one keyword away
        assert _norm_placement(type(block)(*_block_args(block), norm=norm)) == norm


def _block_args(block) -> tuple:
    if isinstance(block.synapse, torch.nn.Conv2d):
        conv = block.synapse
        return conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return block.synapse.in_features, block.synapse.out_features


def test_conv_liaf_takes_the_conv_arguments_of_conv_lif():
    block = ConvLIAF(2, 4, 3, 2, 1, pooling=2, sharing="channel", norm="state", liaf_mode="TR")
    assert block.synapse.stride == (2, 2) and block.synapse.padding == (1, 1)
    assert block.neuron.channels == 4 and block.neuron.liaf_mode == "TR"
    assert block(torch.rand(2, 3, 2, 8, 8)).shape == (2, 3, 4, 2, 2)
