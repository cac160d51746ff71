"""The non-spiking twins: the paper's networks with a ReLU in place of every neuron (bidl.models.twins)."""

import pytest
import torch
from helpers import REPO
from torch import nn

from bidl import ConvLIF, ReLUNeuron, set_iteration_mode
from bidl.models import create_model
from bidl.models.baselines import BASELINES, baseline_kind
from bidl.models.twins import TWINS, non_spiking_twin
from bidl.neurons import LIF
from bidl.pipeline.config import load_yaml, resolve_experiment

NEURON_STATE = ("alpha", "beta", "theta", "v_reset", "coupling")


@pytest.mark.parametrize("network", sorted(TWINS))
def test_a_twin_is_its_network_without_the_neurons(network):
    """Built under the same seed, the twin holds every tensor of its network but the neurons' own, with the
    same values, and no neuron."""
    torch.manual_seed(0)
    net = create_model(network)
    torch.manual_seed(0)
    twin = create_model(TWINS[network])
    assert not any(isinstance(m, LIF) for m in twin.modules())
    assert any(isinstance(m, ReLUNeuron) for m in twin.modules())
    ours, theirs = twin.state_dict(), net.state_dict()
    assert set(ours) <= set(theirs)
    dropped = set(theirs) - set(ours)
    neuron_state = [key for key in dropped if any(part in key.split(".")[-2:] for part in NEURON_STATE)]
    assert dropped and sorted(neuron_state) == sorted(dropped), dropped
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert baseline_kind(TWINS[network]) == "relu" and "relu" not in BASELINES.get(network, {})


def test_the_twin_neuron_is_a_relu_of_each_steps_normalised_input():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    reference = nn.BatchNorm2d(3)
    reference.load_state_dict(bn.state_dict())
    x = torch.randn(4, 5, 3, 6, 6)
    unit = ReLUNeuron(norm=bn).train()
    y = unit(x)
    expected = torch.stack([torch.relu(reference(x[:, t])) for t in range(5)], dim=1)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_mean, reference.running_mean, rtol=0, atol=0)
    assert torch.equal(ReLUNeuron()(x), torch.relu(x))


def test_a_twin_has_no_memory_its_steps_are_permuted_with_its_inputs():
    torch.manual_seed(0)
    block = non_spiking_twin(nn.Sequential(ConvLIF(2, 4, 3, padding=1, norm="state"))).eval()
    x = torch.rand(2, 7, 2, 8, 8)
    order = torch.randperm(7)
    torch.testing.assert_close(block(x[:, order]), block(x)[:, order], rtol=0, atol=0)
    spiking = nn.Sequential(ConvLIF(2, 4, 3, padding=1, norm="state")).eval()
    assert not torch.equal(spiking(x[:, order]), spiking(x)[:, order])  # the neuron does remember


def test_a_twin_streams_step_by_step_as_it_runs_whole_sequences():
    torch.manual_seed(0)
    twin = create_model("dvs128_gesture_relu", channels=[4, 8, 8], hidden=16, height=16, width=16).eval()
    x = torch.rand(2, 6, 2, 16, 16)
    with torch.no_grad():
        whole = twin(x)
        set_iteration_mode(twin, "external")
        for t in range(6):
            streamed = twin(x[:, t])
    torch.testing.assert_close(streamed, whole, rtol=1e-5, atol=1e-6)


def test_a_network_without_neurons_has_no_twin():
    with pytest.raises(ValueError, match="Sequential has no neuron"):
        non_spiking_twin(nn.Sequential(nn.Linear(3, 3)))


def test_a_twin_in_the_config_takes_all_its_networks_keywords_and_recipe():
    config = load_yaml(REPO / "config" / "config.yaml")
    entry = resolve_experiment(config, "imdb_relu")
    base = config["experiments"]["imdb"]
    assert entry["model"] == "imdb_relu" and entry["baseline_of"] == "imdb"
    assert entry["model_kwargs"] == base["model_kwargs"] and entry["recipe"] == base["recipe"]
    for name, spec in config["baselines"].items():
        if baseline_kind(spec["model"]) == "relu":  # the same training budget as the network's
            assert resolve_experiment(config, name)["recipe"] == config["experiments"][spec["of"]]["recipe"]
