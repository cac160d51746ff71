"""The paper's networks: parameter counts, IIM == EIM on the same weights."""

import pytest
import torch

from bidl import get_iteration_mode, reset_states, set_iteration_mode
from bidl.models import count_parameters, create_model, list_models


def test_registry_lists_and_builds_models():
    assert "dvs128_gesture" in list_models()
    with pytest.raises(KeyError, match="unknown name"):
        create_model("no_such_net")


@pytest.mark.parametrize("sharing", ["all", "channel"])
def test_dvs128_network_has_the_authors_parameter_count(sharing):
    # the authors' SeqClif3Flif2DgItout: 2,013,157 trainable parameters (fixed neuron parameters)
    assert count_parameters(create_model("dvs128_gesture_authors", sharing=sharing)) == 2_013_157
    # the paper's variant learns alpha, beta, theta, v_reset per layer (ASM: 4 scalars) or per channel (CSM)
    learned = 4 * 5 if sharing == "all" else 4 * (64 + 128 + 256 + 256 + 11)
    assert count_parameters(create_model("dvs128_gesture", sharing=sharing)) == 2_013_157 + learned


@pytest.mark.parametrize("sharing", ["all", "channel"])
def test_dvs128_iim_and_eim_give_identical_spikes(sharing):
    torch.manual_seed(0)
    model = create_model("dvs128_gesture", sharing=sharing, channels=(8, 16, 32), hidden=32, theta=0.2)
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = (torch.rand(3, 12, 2, 40, 40) < 0.15).float() * 3
    spikes_iim, spikes_eim = [], []
    hook = model.fc1.neuron.register_forward_hook(lambda m, i, o: spikes_iim.append(o.detach()))
    out_iim = model(x)
    hook.remove()
    set_iteration_mode(model, "external")
    assert get_iteration_mode(model) == "external"
    hook = model.fc1.neuron.register_forward_hook(lambda m, i, o: spikes_eim.append(o.detach()))
    for t in range(12):
        out_eim = model(x[:, t])
    hook.remove()
    assert spikes_iim[0].sum() > 0, "the test input should make the hidden layer fire"
    assert torch.equal(spikes_iim[0], torch.stack(spikes_eim, 1))
    assert torch.allclose(out_iim, out_eim, atol=1e-6)
    reset_states(model)
    assert model.fc1.neuron.v is None


def test_dvs128_forward_backward_trains_the_weights():
    torch.manual_seed(0)
    model = create_model("dvs128_gesture", channels=(4, 8, 8), hidden=16, theta=0.1)
    x = torch.rand(8, 5, 2, 40, 40)  # BatchNorm on a batch of 2 would pin every membrane to +-1
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(8) % 11)
    loss.backward()
    assert model.conv1.synapse.weight.grad.abs().sum() > 0
