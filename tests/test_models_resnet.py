"""The Jester ResNet18-LIAF networks: parameter counts, training gradients, IIM == EIM on the same weights."""

import pytest
import torch

import bidl.models.resnet  # noqa: F401  (registers the Jester models)
from bidl import LIAF, reset_states, set_iteration_mode
from bidl.models import count_parameters, create_model, list_models
from bidl.models.resnet import ElectricallyCoupledLIAF

JESTER_MODELS = ["jester_v1_authors", "jester_v1", "jester_v2"]
TINY = dict(widths=(4, 8, 8, 8))


def _randomise(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Random BatchNorm affine parameters and running statistics, nonzero coupling kernels.

    The running statistics are first set to those of ``x`` (one training-mode pass with momentum 1), so that
    activity reaches the last layer, then perturbed at random (mean by up to 0.2 std, variance by 0.7-1.3x).
    """
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for module in batch_norms:
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.2, 0.2)
            module.momentum = 1.0
        for module in model.modules():
            if isinstance(module, ElectricallyCoupledLIAF):
                module.coupling.weight.uniform_(-0.2, 0.2)
        model.train()
        model(x)
        for module in batch_norms:
            module.momentum = 0.1
            module.running_mean += (
                0.2 * module.running_var.sqrt() * (2 * torch.rand_like(module.running_mean) - 1)
            )
            module.running_var *= 0.7 + 0.6 * torch.rand_like(module.running_var)


def _count_spikes(model: torch.nn.Module) -> dict[str, float]:
    """Count the spikes each neuron layer fires from now on (wraps its spike function)."""
    counts: dict[str, float] = {}

    def recording(name, spike_fn):
        def spike(x):
            out = spike_fn(x)
            counts[name] += out.sum().item()
            return out

        return spike

    for name, module in model.named_modules():
        if isinstance(module, LIAF):
            counts[name] = 0.0
            module.spike_fn = recording(name, module.spike_fn)
    return counts


def test_jester_models_are_registered():
    assert set(JESTER_MODELS) <= set(list_models())


def test_jester_v1_authors_has_the_authors_parameter_count():
    # torchvision-style ResNet18 with a 27-way FC: 11,190,363; the authors' convs all carry a bias: +4,800
    assert count_parameters(create_model("jester_v1_authors")) == 11_195_163
    assert count_parameters(create_model("jester_v1")) == 11_195_163


def test_jester_v1_authors_conv_biases_are_the_4800_extra_parameters():
    model = create_model("jester_v1_authors")
    conv_biases = sum(m.bias.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv_biases == 4_800


def test_jester_v2_has_the_documented_parameter_count():
    # v1 + 17 coupling kernels C x C x 3 x 3 (stem 64, four per stage): the paper's "12M -> 24M"
    model = create_model("jester_v2")
    assert count_parameters(model) == 23_765_787
    coupling = sum(
        m.coupling.weight.numel() for m in model.modules() if isinstance(m, ElectricallyCoupledLIAF)
    )
    assert coupling == 12_570_624


def test_neuron_parameters_count_only_when_learnable():
    base = count_parameters(create_model("jester_v1_authors", **TINY))
    # 17 LIAF layers x (alpha, beta, theta, v_reset)
    assert count_parameters(create_model("jester_v1_authors", learnable=True, **TINY)) == base + 17 * 4
    channel = create_model("jester_v1_authors", learnable=True, sharing="channel", **TINY)
    assert count_parameters(channel) == base + 4 * (4 + 4 * 4 + 4 * 8 * 3)


@pytest.mark.parametrize("name", JESTER_MODELS)
def test_jester_forward_backward_trains_every_weight(name):
    torch.manual_seed(0)
    model = create_model(name, n_classes=5, theta=0.2, **TINY)
    x = torch.rand(4, 3, 3, 32, 32)
    _randomise(model, x)  # coupling kernels start at zero; make them matter
    out = model(x)
    assert out.shape == (4, 5)
    torch.nn.functional.cross_entropy(out, torch.arange(4) % 5).backward()
    for name_, parameter in model.named_parameters():
        assert parameter.grad is not None, name_
        assert torch.isfinite(parameter.grad).all(), name_
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name_}"


@pytest.mark.parametrize("name", JESTER_MODELS)
@pytest.mark.parametrize("sharing", ["all", "channel"])
def test_jester_iim_and_eim_agree_on_the_same_weights(name, sharing):
    torch.manual_seed(1)
    # float64: a conv over B*T frames (IIM) and over B frames (EIM) may round differently, and a membrane
    # within float32 rounding of the threshold would then fire in one mode only
    model = create_model(name, sharing=sharing, in_channels=2, n_classes=7, **TINY).double()
    x = torch.randn(2, 3, 2, 32, 32, dtype=torch.float64)
    _randomise(model, x)
    model.eval()
    spikes = _count_spikes(model)
    out_iim = model(x)
    for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):  # resets happen throughout the network
        fired = sum(count for name_, count in spikes.items() if name_.startswith(stage))
        assert fired > 0, f"{stage} should fire: {spikes}"
    assert (out_iim[0] - out_iim[1]).abs().max() > 1e-3, "the output should depend on the input"
    set_iteration_mode(model, "external")
    out_first = model(x[:, 0])
    for t in range(1, x.shape[1]):
        out_eim = model(x[:, t])
    assert (out_first - out_iim).abs().max() > 1e-3, "later steps should change the running mean"
    assert out_iim.shape == out_eim.shape == (2, 7)
    assert torch.allclose(out_iim, out_eim, atol=1e-5, rtol=0)
    reset_states(model)
    assert model.stem_neuron.v is None and model.aggregate.accumulator is None


def test_eim_refuses_a_new_batch_without_a_reset():
    model = create_model("jester_v2", iteration="external", **TINY).eval()
    model(torch.rand(2, 3, 32, 32))
    with pytest.raises(RuntimeError, match="reset_states"):
        model(torch.rand(3, 3, 32, 32))


def test_coupling_kernel_moves_the_membrane_of_the_neighbours():
    torch.manual_seed(0)
    neuron = ElectricallyCoupledLIAF(2, reset="soft", theta=10.0, alpha=1.0)  # no spikes: pure integration
    x = torch.zeros(1, 2, 2, 5, 5)
    x[0, 0, 0, 2, 2] = 1.0  # one input at t=0 in the centre of channel 0
    assert torch.equal(neuron(x)[0, 1], neuron(x)[0, 0])  # zero kernel: no coupling
    with torch.no_grad():
        neuron.coupling.weight[1, 0, 0, 0] = 0.5  # channel 0 at (i-1, j-1) drives channel 1 at (i, j)
    y = neuron(x).detach()
    assert y[0, 1, 1, 3, 3].item() == pytest.approx(0.5)
    assert y[0, 1, 1].sum().item() == pytest.approx(0.5)
