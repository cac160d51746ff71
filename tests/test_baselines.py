"""The conventional baselines of paper Table 3 (bidl.models.baselines): shapes as the paper networks, IIM ==
EIM, Conv3D depth and weights, ConvLSTM widths, training, and the config's structural keyword arguments."""

import inspect
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from bidl.ann import CausalConv3d, ConvLSTM
from bidl.evaluation import predict
from bidl.models import baselines, cifar10_dvs, create_model, dvs128, imdb, list_models, luna16, resnet
from bidl.models.baselines import BASELINES, NEURON_KEYWORDS, baselines_of, structural_kwargs
from bidl.models.registry import load_matching_weights
from bidl.models.twins import TWINS

CONFIG = Path(__file__).resolve().parents[1] / "config"
PRESETS = {name: yaml.safe_load((CONFIG / f"{name}.yaml").read_text()) for name in ("config", "paper")}
SMALL = PRESETS["config"]["experiments"]

# one experiment of the default preset per family, and a short input of that family
FAMILIES = {
    "dvs128_asm": (2, 4, 2, 40, 40),
    "rgb_gesture": (2, 4, 2, 40, 40),
    "cifar10_dvs": (2, 3, 2, 64, 64),
    "luna16_cls": (2, 4, 1, 32, 32),
    "jester_v1": (2, 4, 3, 32, 32),
    "imdb": (2, 12),
}
CASES = [(exp, kind, name) for exp in FAMILIES for kind, name in BASELINES[SMALL[exp]["model"]].items()]
CASE_IDS = [name for _, _, name in CASES]


def make_input(experiment: str, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = FAMILIES[experiment]
    if batch is not None:
        shape = (batch, *shape[1:])
    generator = torch.Generator().manual_seed(seed)
    if experiment == "imdb":
        return torch.randint(0, 1001, shape, generator=generator)
    return (torch.rand(shape, generator=generator) < 0.3).float() * 2


def paper_net(experiment: str) -> nn.Module:
    spec = SMALL[experiment]
    return create_model(spec["model"], **spec["model_kwargs"])


def baseline(experiment: str, name: str, **extra) -> nn.Module:
    return create_model(name, **structural_kwargs(SMALL[experiment]["model_kwargs"]), **extra)


def randomise_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


def test_every_baseline_is_registered():
    names = {name for kinds in BASELINES.values() for name in kinds.values()}
    assert names <= set(list_models())
    assert len(names) == 11
    assert baselines_of("imdb") == {"lstm": "imdb_lstm"}
    assert set(baselines_of("jester_v2")) == {"conv3d", "convlstm"}
    with pytest.raises(KeyError, match="nope"):
        baselines_of("nope")


def test_baselines_are_named_after_the_paper_network_from_registry_to_config():
    for model, kinds in BASELINES.items():
        network = model.removesuffix("_authors")
        network = "jester_v1" if network == "jester_v2" else network  # v2: v1's ResNet18, other neurons
        assert kinds == {kind: f"{network}_{kind}" for kind in kinds}, model
    for preset, config in PRESETS.items():
        for name, entry in config["baselines"].items():
            of = entry["of"]
            kind = baselines.baseline_kind(entry["model"])
            network = config["experiments"][of]["model"]
            registered = TWINS[network] if kind == "relu" else baselines_of(network)[kind]
            assert entry["model"] == registered, (preset, name)
            assert name == f"{of}_{kind}", (preset, name)


@pytest.mark.parametrize(("experiment", "kind", "name"), CASES, ids=CASE_IDS)
def test_output_shape_as_the_paper_network(experiment, kind, name):
    torch.manual_seed(0)
    x = make_input(experiment)
    with torch.no_grad():
        expected = paper_net(experiment).eval()(x).shape
        assert baseline(experiment, name).eval()(x).shape == expected


@pytest.mark.parametrize(("experiment", "kind", "name"), CASES, ids=CASE_IDS)
def test_iim_equals_eim(experiment, kind, name):
    torch.manual_seed(0)
    model = baseline(experiment, name)
    randomise_batchnorm(model)
    x = make_input(experiment, batch=3)
    data = TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    iim, _ = predict(model, data, mode="internal")
    eim, _ = predict(model, data, mode="external")
    assert iim.abs().max() > 0
    torch.testing.assert_close(eim, iim, atol=1e-5, rtol=1e-5)


def _conv_weights(model: nn.Module, cls: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, cls)]


@pytest.mark.parametrize("experiment", ["dvs128_asm", "cifar10_dvs", "luna16_cls", "jester_v1"])
def test_conv3d_has_the_paper_depth_and_three_times_the_weights(experiment):
    paper = _conv_weights(paper_net(experiment), nn.Conv2d)
    name = BASELINES[SMALL[experiment]["model"]]["conv3d"]
    model = baseline(experiment, name)
    convs = _conv_weights(model, CausalConv3d)
    assert not _conv_weights(model, nn.Conv2d)  # every conv is a Conv3D
    depth = {"dvs128_asm": 3, "cifar10_dvs": 5, "luna16_cls": 3, "jester_v1": 20}[experiment]
    assert len(convs) == len(paper) == depth
    for conv2d, conv3d in zip(paper, convs, strict=True):
        u = conv3d.window
        assert u == (1 if conv2d.kernel_size == (1, 1) else 3)  # the 1x1 shortcut projections: 1x1x1
        assert conv3d.conv.weight.shape == (*conv2d.weight.shape[:2], u, *conv2d.weight.shape[2:])
        assert conv3d.conv.weight.numel() == u * conv2d.weight.numel()
        assert conv3d.conv.bias.numel() == conv2d.bias.numel()
        assert conv3d.conv.stride[1:] == conv2d.stride and conv3d.conv.padding[1:] == conv2d.padding


@pytest.mark.parametrize("experiment", ["dvs128_asm", "cifar10_dvs", "luna16_cls", "jester_v1"])
def test_convlstm_has_the_paper_widths(experiment):
    spec = SMALL[experiment]
    name = BASELINES[spec["model"]]["convlstm"]
    layers = _conv_weights(baseline(experiment, name), ConvLSTM)
    widths = spec["model_kwargs"]["widths" if experiment == "jester_v1" else "channels"]
    assert [layer.hidden for layer in layers] == list(widths)
    if experiment != "jester_v1":  # same kernels and strides as the paper's ConvLIF blocks
        paper = _conv_weights(paper_net(experiment), nn.Conv2d)
        for conv2d, layer in zip(paper, layers, strict=True):
            assert layer.input_map.kernel_size == conv2d.kernel_size
            assert layer.input_map.stride == conv2d.stride


@pytest.mark.parametrize(("experiment", "kind", "name"), CASES, ids=CASE_IDS)
def test_a_few_adam_steps_reduce_the_loss(experiment, kind, name):
    torch.manual_seed(0)
    extra = {"dropout": 0.0} if experiment == "imdb" else {}
    model = baseline(experiment, name, **extra).train()
    x = make_input(experiment, batch=6, seed=1)
    n_classes = paper_net(experiment).eval()(x[:1]).shape[1]
    labels = torch.arange(len(x)) % n_classes
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.CrossEntropyLoss()  # as bidl.training
    losses = []
    for _ in range(6):
        loss = criterion(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


NEURON_EXAMPLES = {"alpha": 0.5, "sharing": "channel", "norm": "input", "liaf_readout": "pre_reset"}


@pytest.mark.parametrize("name", sorted({n for kinds in BASELINES.values() for n in kinds.values()}))
@pytest.mark.parametrize("keyword", sorted(NEURON_EXAMPLES))
def test_neuron_keywords_are_refused(name, keyword):
    with pytest.raises(TypeError, match=keyword):
        create_model(name, **{keyword: NEURON_EXAMPLES[keyword]})


def test_structural_kwargs_drops_only_the_neuron_keywords():
    given = {"channels": [16, 32, 64], "hidden": 128, "alpha": 0.8, "norm": "input", "noise": 0.0}
    assert structural_kwargs(given) == {"channels": [16, 32, 64], "hidden": 128}
    assert structural_kwargs(None) == {}
    assert given["alpha"] == 0.8  # not modified
    for variant in PRESETS["paper"]["lifplus_study"]["variants"].values():
        assert set(variant) <= NEURON_KEYWORDS


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_experiment_builds_its_baselines_from_its_model_kwargs(preset):
    experiments = PRESETS[preset]["experiments"]
    assert experiments
    for experiment, spec in experiments.items():
        kwargs = spec.get("model_kwargs", {})
        dropped = set(kwargs) - set(structural_kwargs(kwargs))
        assert dropped <= NEURON_KEYWORDS
        for name in baselines_of(spec["model"]).values():
            with torch.device("meta"):  # structure only: no memory, no initialisation
                model = create_model(name, **structural_kwargs(kwargs))
            assert isinstance(model, nn.Module), (experiment, name)
        with torch.device("meta"):  # and the paper builder takes the same keywords
            create_model(spec["model"], **kwargs)


# the paper builder (whose defaults win), its authors' variant (the remaining defaults) -> the baselines
PAPER_BUILDERS = [
    (dvs128.dvs128_gesture, dvs128.dvs128_gesture_authors, "dvs128_gesture"),
    (cifar10_dvs.cifar10_dvs, cifar10_dvs.cifar10_dvs_authors, "cifar10_dvs"),
    (luna16.luna16_cls, luna16.luna16_cls_authors, "luna16_cls"),
    (resnet.jester_v1, resnet.jester_v1_authors, "jester_v1"),
    (resnet.jester_v2, resnet.jester_v2, "jester_v2"),
    (imdb.imdb, imdb.imdb_authors, "imdb"),
]


def _explicit(fn) -> dict:
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _normal(value):
    return list(value) if isinstance(value, tuple | list) else value


@pytest.mark.parametrize(("paper", "authors", "model"), PAPER_BUILDERS, ids=[m for *_, m in PAPER_BUILDERS])
def test_baselines_take_the_paper_builders_structural_keywords_with_its_defaults(paper, authors, model):
    defaults = {**_explicit(authors), **_explicit(paper)}
    structural = {k: v for k, v in defaults.items() if k not in NEURON_KEYWORDS}
    assert structural, model
    for name in baselines_of(model).values():
        own = _explicit(getattr(baselines, name))
        assert set(structural) <= set(own), (name, set(structural) - set(own))
        for key, value in structural.items():
            assert _normal(own[key]) == _normal(value), (name, key)


def test_rgb_gesture_baselines_start_from_the_dvs128_baselines():
    for kind in ("conv3d", "convlstm"):
        source = baseline("dvs128_asm", f"dvs128_gesture_{kind}")
        target = baseline("rgb_gesture", f"rgb_gesture_{kind}")
        kept = load_matching_weights(target, source.state_dict())
        assert kept == ["head.module.3.bias", "head.module.3.weight"]  # the 10-class output layer only
