"""The compiled EIM stream (bidl.stream): its neuron operators against the training path's step, bit for bit;
every kind of network against the network run in EIM over whole sequences (outputs, and every state at
every step: membranes equal bit for bit, so spikes equal); reset, the states' names, and the refusals."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers import randomise_batchnorm
from torch import nn

from bidl import FCLIF, ConvLIFPlus, FCLIFPlus, StatefulModule, TemporalAggregation, attach_plasticity
from bidl.export.verify import reference_run
from bidl.functional import inference_builtins, lif_step
from bidl.models import create_model
from bidl.models.baselines import structural_kwargs
from bidl.state import get_iteration_mode, iteration_mode
from bidl.stream import STREAM_OPS, CompiledStream, StreamError, compile_stream

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
EXPERIMENTS = CONFIG["experiments"]
BASELINES = CONFIG["baselines"]

FRAMES = {  # one timestep of each dataset family's input: channels, height, width
    "dvs128_gesture": (2, 40, 40),
    "luna16": (1, 32, 32),
    "jester": (3, 32, 32),
}
STEPS = {"dvs128_gesture": 8, "luna16": 6, "jester": 4, "imdb": 12}


def make_input(dataset: str, batch: int, seed: int = 0) -> torch.Tensor:
    """A short ``[B, T, ...]`` input of the family: sparse events / frames, token ids for IMDB."""
    generator = torch.Generator().manual_seed(seed)
    steps = STEPS[dataset]
    if dataset == "imdb":
        return torch.randint(0, 1000, (batch, steps), generator=generator)
    return (torch.rand(batch, steps, *FRAMES[dataset], generator=generator) < 0.3).float() * 2


randomise = randomise_batchnorm


def eager_run(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """The network in EIM from reset states: outputs ``[B, T, ...]`` and every state after every step, by
    ``<module path>.<name>``."""
    outputs, states = [], []
    with iteration_mode(model, "external"), torch.no_grad():
        for t in range(inputs.shape[1]):
            outputs.append(model(inputs[:, t]))
            states.append(
                {
                    f"{path}.{name}" if path else name: value.clone()
                    for path, module in model.named_modules()
                    if isinstance(module, StatefulModule)
                    for name, value in module.get_state().items()
                }
            )
    return torch.stack(outputs, 1), states


def check_stream(model: nn.Module, inputs: torch.Tensor, *, spiking: bool = True) -> CompiledStream:
    """Compile ``model`` for ``inputs``' batch and check every step against the eager EIM run."""
    stream = compile_stream(model, inputs[:, 0])
    expected, expected_states = eager_run(model, inputs)
    stream.reset()
    outputs = []
    for t in range(inputs.shape[1]):
        outputs.append(stream.step(inputs[:, t]))
        assert set(stream.states) == set(expected_states[t])
        for key, value in expected_states[t].items():
            assert torch.equal(stream.states[key], value), f"step {t}: state {key} differs"
    outputs = torch.stack(outputs, 1)
    assert outputs.shape == expected.shape
    assert (outputs.double() - expected.double()).abs().max() <= 1e-5
    if spiking:  # the comparison proves something only where the neurons fire, and not everywhere
        spikes = torch.cat(
            [torch.as_tensor(s).flatten() for s in reference_run(model, inputs)["spikes"].values()]
        )
        assert 0 < spikes.mean() < 1, "the network never (or always) fired: the check would prove nothing"
    return stream


# -- the neuron operators ------------------------------------------------------------------------------------


def _with_ties(theta: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Inputs around the threshold, a quarter of them exactly at it or one float step either side."""
    x = torch.randn(shape, generator=generator)
    pick = torch.randint(0, 8, shape, generator=generator)
    at = theta.expand(shape)
    x = torch.where(pick == 0, at, x)
    x = torch.where(pick == 1, torch.nextafter(at, torch.full_like(at, math.inf)), x)
    return torch.where(pick == 2, torch.nextafter(at, torch.full_like(at, -math.inf)), x)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("analog", [None, "pre_reset", "post_leak"])
@pytest.mark.parametrize(
    "params",
    [
        dict(alpha=0.3, beta=0.0, theta=0.5, v_reset=0.0),
        dict(alpha=1.0, beta=0.0, theta=1.0, v_reset=0.0),  # no leak: the multiplication is left out
        dict(alpha=0.8, beta=-0.05, theta=0.25, v_reset=-0.1),
        "channel",  # a value per channel
    ],
    ids=["default", "no-leak", "beta-vreset", "channel"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_stream_operators_give_the_training_step_bit_for_bit(reset, analog, params, dtype):
    generator = torch.Generator().manual_seed(1)
    shape = (3, 4, 5, 5)
    if params == "channel":
        params = {
            name: (torch.rand(1, 4, 1, 1, generator=generator) * scale + offset).to(dtype)
            for name, scale, offset in (
                ("alpha", 1, 0),
                ("beta", 0.1, -0.05),
                ("theta", 1, 0.1),
                ("v_reset", 0.2, -0.1),
            )
        }
    else:
        params = {name: torch.tensor(value, dtype=dtype) for name, value in params.items()}
    readout = dict(analog=True, liaf_readout=analog, liaf_mode="TR") if analog else {}
    v = _with_ties(params["theta"], shape, generator).to(dtype)
    for _ in range(4):  # several steps: the membranes carry ties and resets forward
        x = torch.randn(shape, generator=generator) * 0.5
        x = torch.where(torch.rand(shape, generator=generator) < 0.3, 0.0, x).to(dtype)  # u = v: its ties
        y, v_next = lif_step(x, v, reset=reset, **params, **readout)
        with inference_builtins(STREAM_OPS):
            y_fast, v_fast = lif_step(x, v, reset=reset, **params, **readout)
        assert y_fast.dtype == y.dtype and v_fast.dtype == v_next.dtype
        assert torch.equal(y_fast, y) and torch.equal(v_fast, v_next)
        v = v_next


# -- every kind of network, against the network in EIM -------------------------------------------------------


@pytest.mark.parametrize(
    ("experiment", "batch"),
    [("dvs128_asm", 1), ("dvs128_csm", 2), ("imdb", 2), ("jester_v1", 1), ("jester_v2", 2)],
)
def test_pipeline_networks_stream_as_in_eim(experiment, batch):
    """DVS128 small (ASM, and CSM: learned parameters per channel), IMDB (LIAF on embeddings), the LIAF
    ResNets of Jester (v2: RMP soft reset and electrically coupled membranes)."""
    spec = EXPERIMENTS[experiment]
    model = randomise(create_model(spec["model"], **spec["model_kwargs"]))
    stream = check_stream(model, make_input(spec["dataset"], batch))
    assert stream.frame_shape[0] == batch and stream.compile_seconds > 0


def test_lifplus_networks_with_non_default_stages_stream_as_in_eim():
    torch.manual_seed(0)
    model = nn.Sequential(
        ConvLIFPlus(2, 4, 3, stride=2, padding=1, decay="exponential", trigger="qdi", refractory="relative"),
        FCLIFPlus(
            4 * 20 * 20, 6, accumulation="coba", reversal=True, inhibition="adt", refractory="absolute"
        ),
        TemporalAggregation("mean"),
    )
    model = randomise(model)
    stream = check_stream(model, make_input("dvs128_gesture", 1))
    names = {spec.name for spec in stream.specs}
    assert {"v", "r", "g", "y", "w", "c", "accumulator", "steps"} <= names


@pytest.mark.parametrize("name", ["dvs128_asm_convlstm", "luna16_cls_conv3d", "imdb_lstm"])
def test_baselines_stream_as_in_eim(name):
    """ConvLSTM (h, c), causal Conv3D (the last frames), LSTM on token ids."""
    spec = BASELINES[name]
    of = EXPERIMENTS[spec["of"]]
    model = randomise(create_model(spec["model"], **structural_kwargs(of["model_kwargs"])))
    stream = check_stream(model, make_input(of["dataset"], 2), spiking=False)
    assert stream.specs


# -- the stream's interface ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dvs128():
    spec = EXPERIMENTS["dvs128_asm"]
    model = randomise(create_model(spec["model"], **spec["model_kwargs"]))
    inputs = make_input("dvs128_gesture", 1)
    return model, inputs, compile_stream(model, inputs[:, 0])


def test_reset_gives_the_same_outputs_twice(dvs128):
    model, inputs, stream = dvs128
    first = stream.run(inputs)
    assert first.shape == (1, inputs.shape[1], 11)
    for t in range(3):  # a part of a sequence, then a reset
        stream.step(inputs[:, t])
    stream.reset()
    assert all(torch.equal(value, torch.zeros_like(value)) for value in stream.states.values())
    assert torch.equal(torch.stack([stream.step(inputs[:, t]) for t in range(inputs.shape[1])], 1), first)
    assert torch.equal(stream.run(inputs), first)
    expected, _ = eager_run(model, inputs)
    assert torch.equal(first, expected)


def test_states_are_found_by_path_and_by_id(dvs128):
    _, inputs, stream = dvs128
    stream.run(inputs)
    paths = [f"{s.module}.{s.name}" for s in stream.specs]
    assert list(stream.states) == paths and len(stream.states) == len(stream.specs)
    assert "conv1.neuron.v" in paths and "aggregate.accumulator" in paths
    for spec, path in zip(stream.specs, paths, strict=True):
        assert stream.states[spec.id] is stream.states[path]
        assert stream.states[path].shape == (1, *spec.shape)
    with pytest.raises(KeyError, match="no such state"):
        stream.states["conv1.neuron.u"]


def test_the_network_is_left_as_it_was_and_later_changes_do_not_reach_the_stream():
    torch.manual_seed(0)
    model = nn.Sequential(FCLIF(6, 5, norm=None, theta=0.2), TemporalAggregation("sum")).eval()
    inputs = torch.rand(1, 6, 6)
    stream = compile_stream(model, inputs[:, 0])
    assert get_iteration_mode(model) == "internal" and model[0].neuron.v is None
    before = stream.run(inputs)
    with torch.no_grad():
        model[0].synapse.weight.mul_(-1)
    assert torch.equal(stream.run(inputs), before)


def test_an_output_that_is_a_held_state_is_handed_out_as_a_copy():
    """Sum aggregation returns its accumulator: writing into the output must not change the stream."""
    torch.manual_seed(0)
    model = nn.Sequential(FCLIF(6, 5, norm=None, theta=0.2), TemporalAggregation("sum")).eval()
    inputs = torch.rand(1, 6, 6)
    stream = compile_stream(model, inputs[:, 0])
    expected, _ = eager_run(model, inputs)
    stream.reset()
    for t in range(inputs.shape[1]):
        y = stream.step(inputs[:, t])
        assert torch.equal(y, expected[:, t])
        y.fill_(-7.0)


# -- refusals ------------------------------------------------------------------------------------------------


class _Untraceable(nn.Module):
    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("this module does not trace")
        return x


class _HiddenCounter(nn.Module):
    """A state outside get_state(): the trace freezes it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x + self.calls


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


def test_compile_stream_refuses_what_it_cannot_compile_and_names_the_module():
    block = FCLIF(4, 3, norm=None)
    net = nn.Sequential(block, TemporalAggregation("mean"))
    with pytest.raises(StreamError, match=r"Sequential: is in training mode.*network\.eval\(\)"):
        compile_stream(net, torch.rand(1, 4))
    attach_plasticity(block, "stdp")
    with pytest.raises(StreamError, match=r"0\.plasticity: an active plasticity rule"):
        compile_stream(net.eval(), torch.rand(1, 4))
    block.plasticity.active = False
    assert [s.name for s in compile_stream(net, torch.rand(1, 4)).specs] == ["v", "accumulator", "steps"]

    with pytest.raises(StreamError, match=r"^1: cannot be traced.*does not trace"):
        compile_stream(nn.Sequential(FCLIF(4, 3, norm=None), _Untraceable()).eval(), torch.rand(1, 4))
    with pytest.raises(StreamError, match="output differs from the network's"):
        compile_stream(nn.Sequential(FCLIF(4, 3, norm=None), _HiddenCounter()).eval(), torch.rand(1, 4))
    with pytest.raises(StreamError, match="returns tuple"):
        compile_stream(nn.Sequential(FCLIF(4, 3, norm=None), _Pair()).eval(), torch.rand(1, 4))
    with pytest.raises(StreamError, match="holds no bidl module"):
        compile_stream(nn.Linear(4, 3).eval(), torch.rand(1, 4))
    with pytest.raises(ValueError, match="example_frame"):
        compile_stream(net, [0.0, 1.0])


def test_step_refuses_a_frame_of_another_shape_dtype_or_batch(dvs128):
    _, inputs, stream = dvs128
    with pytest.raises(ValueError, match=r"compiled for \(1, 2, 40, 40\).*another batch size"):
        stream.step(torch.zeros(2, 2, 40, 40))
    with pytest.raises(ValueError, match="torch.float64"):
        stream.step(inputs[:, 0].double())
    with pytest.raises(ValueError, match=r"expected \[B, T, \.\.\.\]"):
        stream.run(torch.zeros(3))
