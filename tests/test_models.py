"""The paper's networks: parameter counts, IIM == EIM on the same weights."""

import pytest
import torch

from bidl import get_iteration_mode, reset_states, set_iteration_mode
from bidl.models import count_parameters, create_model, list_models
from bidl.models.baselines import BASELINES
from bidl.models.twins import TWINS


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


#: a tiny configuration and input of every registered model (a new model must add its own here)
TINY = {
    "cifar10_dvs": ({"channels": (4, 4, 4, 4, 4), "hidden": 8, "height": 64, "width": 64}, (2, 3, 2, 64, 64)),
    "dvs128_gesture": ({"channels": (4, 4, 4), "hidden": 8}, (2, 3, 2, 40, 40)),
    "imdb": ({"embedding_dim": 4, "hidden": 8, "n_classes": 2}, (2, 5)),
    "jester_v1": ({"widths": (4, 8, 8, 8)}, (2, 3, 3, 32, 32)),
    "jester_v2": ({"widths": (4, 8, 8, 8)}, (2, 3, 3, 32, 32)),
    "luna16_cls": ({"channels": (4, 4, 4), "hidden": (8, 8)}, (2, 3, 1, 32, 32)),
    "rgb_gesture": ({"channels": (4, 4, 4), "hidden": 8}, (2, 3, 2, 40, 40)),
}
# the conventional baselines (bidl.models.baselines) take the structural keywords of their paper network
TINY.update(
    {name: TINY[paper] for paper, kinds in BASELINES.items() if paper in TINY for name in kinds.values()}
)
# the non-spiking twins (bidl.models.twins) take their network's keywords
TINY.update({twin: TINY[paper] for paper, twin in TWINS.items()})


def _tiny(name):
    kwargs, shape = TINY[name.removesuffix("_authors")]
    torch.manual_seed(0)
    x = torch.randint(0, 1001, shape) if len(shape) == 2 else torch.rand(shape) * 2
    return create_model(name, **kwargs), x


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_and_agrees_in_iim_and_eim(name):
    model, x = _tiny(name)
    out = model(x)
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1]) % out.shape[1]).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reached the weights"
    model.eval()
    with torch.no_grad():
        out_iim = model(x)
        set_iteration_mode(model, "external")
        reset_states(model)
        for t in range(x.shape[1]):
            out_eim = model(x[:, t])
    assert torch.allclose(out_iim, out_eim, atol=1e-5), (out_iim, out_eim)


def test_every_registered_model_has_a_tiny_configuration():
    assert {name.removesuffix("_authors") for name in list_models()} == set(TINY)


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("dvs128_gesture_authors", 2_013_157),
        ("cifar10_dvs_authors", 2_625_514),
        ("luna16_cls_authors", 1_208_130),
        ("jester_v1_authors", 11_195_163),
    ],
)
def test_the_authors_variants_have_the_authors_parameter_counts(name, count):
    assert count_parameters(create_model(name)) == count


#: where each registered model puts BatchNorm in its ST blocks, as its builder's docstring states: "state"
#: on the membrane (the authors' norm_state), "input" on the synaptic current; a model absent here has none
NORM_PLACEMENT = {
    "dvs128_gesture": "state",
    "dvs128_gesture_authors": "state",
    "rgb_gesture": "state",
    "rgb_gesture_authors": "state",
    "cifar10_dvs": "input",
    "cifar10_dvs_authors": "state",
    "luna16_cls": "input",
    "luna16_cls_authors": "state",
    "imdb": "input",
    "imdb_authors": "state",
}
# a twin keeps its network's BatchNorm where the network has it (the neuron's on the membrane: the twin's on
# the step's input, before its ReLU)
NORM_PLACEMENT.update({twin: NORM_PLACEMENT[net] for net, twin in TWINS.items() if net in NORM_PLACEMENT})


def _placement(block) -> str | None:
    from torch.nn.modules.batchnorm import _BatchNorm

    if isinstance(block.neuron.norm, _BatchNorm):
        assert block.input_norm is None
        return "state"
    return "input" if isinstance(block.input_norm, _BatchNorm) else None


@pytest.mark.parametrize("name", list_models())
def test_every_model_places_batchnorm_where_its_builder_says(name):
    from bidl import LIF, STBlock

    model, _ = _tiny(name)
    blocks = [m for m in model.modules() if isinstance(m, STBlock)]
    if name not in NORM_PLACEMENT:
        assert not blocks, f"{name}: has ST blocks; add its BatchNorm placement to NORM_PLACEMENT"
        # the Jester ResNets: BatchNorm after each conv, none on a membrane
        assert all(m.norm is None for m in model.modules() if isinstance(m, LIF))
        return
    assert blocks and {_placement(b) for b in blocks} == {NORM_PLACEMENT[name]}
    kwargs, _ = TINY[name.removesuffix("_authors")]
    explicit = create_model(name, norm=NORM_PLACEMENT[name], **kwargs)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in explicit.state_dict().items()}
