"""CIFAR10-DVS, Luna16Cls, IMDB and RGB-gesture networks: parameter counts, gradients, IIM == EIM."""

import pytest
import torch

import bidl.models.cifar10_dvs
import bidl.models.imdb
import bidl.models.luna16
import bidl.models.rgb_gesture  # noqa: F401  (the imports register the models)
from bidl import reset_states, set_iteration_mode
from bidl.models import count_parameters, create_model
from bidl.models.rgb_gesture import load_matching_weights

# tiny widths and inputs that keep each network's structure; theta 0.2 so that the spiking layers fire
_CONV = dict(theta=0.2)
TINY = {
    "cifar10_dvs": dict(channels=(4, 4, 8, 8, 8), hidden=16, height=64, width=64, **_CONV),
    "cifar10_dvs_authors": dict(channels=(4, 4, 8, 8, 8), hidden=16, height=64, width=64, **_CONV),
    "luna16_cls": dict(channels=(4, 8, 8), hidden=(16, 8), height=16, width=16, **_CONV),
    "luna16_cls_authors": dict(channels=(4, 8, 8), hidden=(16, 8), height=16, width=16, **_CONV),
    "imdb": dict(vocab_size=30, embedding_dim=8, hidden=16),
    "imdb_authors": dict(vocab_size=30, embedding_dim=8, hidden=16),
    "rgb_gesture": dict(channels=(4, 8, 8), hidden=16, height=16, width=16, **_CONV),
    "rgb_gesture_authors": dict(channels=(4, 8, 8), hidden=16, height=16, width=16, **_CONV),
}


def tiny_input(name: str, batch: int, steps: int) -> torch.Tensor:
    """A batch-first input of the network's kind: token ids for IMDB, event-like frames otherwise."""
    kwargs = TINY[name]
    if name.startswith("imdb"):
        return torch.randint(0, kwargs["vocab_size"], (batch, steps))
    channels = 1 if name.startswith("luna16") else 2
    return (torch.rand(batch, steps, channels, kwargs["height"], kwargs["width"]) < 0.3).float() * 2


def first_weight(model: torch.nn.Module) -> torch.nn.Parameter:
    """The first conv / linear / embedding weight of the network."""
    return next(p for p in model.parameters() if p.dim() > 1)


def randomise_batchnorm(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10_dvs_authors", 2_625_514),  # the authors' SeqClif5Fc2CdItout
        ("luna16_cls_authors", 1_208_130),  # the authors' SeqClif3Fc3LcItout
        ("cifar10_dvs", 2_625_514 + 5 * 4),  # + alpha, beta, theta, v_reset learned per layer (ASM)
        ("luna16_cls", 1_208_130 + 3 * 4),
        ("imdb_authors", 1001 * 16 + (16 * 256 + 256) + 2 * 256 + (256 + 1)),  # their FastTextItout
        ("imdb", 1001 * 256 + (256 * 256 + 256) + 2 * 256 + 4 + (256 * 2 + 2)),
        ("rgb_gesture_authors", 2_013_157),  # the DVS128 network unchanged (nclass=11)
        ("rgb_gesture", 2_013_157 - (256 + 1) - 2 + 5 * 4),  # 10 output neurons, learned neuron parameters
    ],
)
def test_paper_networks_have_the_expected_parameter_counts(name, expected):
    assert count_parameters(create_model(name)) == expected


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_reaches_the_first_layer(name):
    torch.manual_seed(0)
    model = create_model(name, **TINY[name])
    x = tiny_input(name, batch=6, steps=3)
    out = model(x)
    n_classes = out.shape[1]
    assert out.shape == (6, n_classes)
    labels = torch.arange(6) % max(n_classes, 2)
    if n_classes == 1:  # the authors' IMDB head: one logit, sigmoid cross-entropy
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], labels.float())
    else:
        loss = torch.nn.functional.cross_entropy(out, labels)
    loss.backward()
    assert first_weight(model).grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(TINY))
def test_iim_and_eim_give_the_same_output(name):
    torch.manual_seed(1)
    model = create_model(name, **TINY[name])
    randomise_batchnorm(model)
    model.eval()
    steps = 5
    x = tiny_input(name, batch=3, steps=steps)
    with torch.no_grad():
        out_iim = model(x)
        set_iteration_mode(model, "external")
        for t in range(steps):
            out_eim = model(x[:, t])
    assert (out_iim - out_iim[0]).abs().sum() > 0, "the outputs should differ between samples"
    torch.testing.assert_close(out_eim, out_iim, atol=1e-5, rtol=0)
    reset_states(model)
    set_iteration_mode(model, "internal")
    with torch.no_grad():
        torch.testing.assert_close(model(x), out_iim, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("name", "aggregate"),
    [
        ("cifar10_dvs", lambda y: y.sum(1)),  # the paper: SumLayer, then the FC head once
        ("luna16_cls", lambda y: y.mean(1)),  # the paper: temporal average, then the FC head once
    ],
)
def test_paper_variants_aggregate_before_the_head(name, aggregate):
    torch.manual_seed(2)
    model = create_model(name, **TINY[name]).eval()
    x = tiny_input(name, batch=2, steps=4)
    with torch.no_grad():
        expected = model.head(aggregate(model.features(x)))
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("name", ["cifar10_dvs_authors", "luna16_cls_authors"])
def test_authors_variants_average_the_head_outputs_of_every_step(name):
    torch.manual_seed(3)
    model = create_model(name, **TINY[name]).eval()
    x = tiny_input(name, batch=2, steps=4)
    with torch.no_grad():
        features = model.features(x)
        expected = torch.stack([model.head.module(features[:, t]) for t in range(4)], 1).mean(1)
        torch.testing.assert_close(model(x), expected)


def test_liaf_options_need_the_liaf_neuron():
    with pytest.raises(ValueError, match="only for neuron='liaf'"):
        create_model("cifar10_dvs", liaf_readout="post_leak")
    with pytest.raises(ValueError, match="too small"):
        create_model("cifar10_dvs_authors", height=32, width=32)


@pytest.mark.parametrize(("source", "target"), [("dvs128_gesture", "rgb_gesture")])
def test_rgb_gesture_starts_from_a_trained_dvs128_model(tmp_path, source, target):
    torch.manual_seed(4)
    widths = dict(channels=(4, 8, 8), hidden=16, height=16, width=16)
    dvs128 = create_model(source, **widths)
    randomise_batchnorm(dvs128)
    with torch.no_grad():
        for p in dvs128.parameters():
            p.add_(torch.randn_like(p))
    torch.save(dvs128.state_dict(), tmp_path / "model.pt")
    rgb = create_model(target, **widths)

    skipped = load_matching_weights(rgb, torch.load(tmp_path / "model.pt"))

    theirs, ours = dvs128.state_dict(), rgb.state_dict()
    mismatched = {k for k in ours if ours[k].shape != theirs[k].shape}
    assert set(skipped) == mismatched and mismatched  # only the 11-way output layer's tensors
    assert all(k.startswith("fc2.") for k in skipped)
    for k in ours.keys() - mismatched:
        assert torch.equal(ours[k], theirs[k]), k


def test_authors_rgb_gesture_takes_the_whole_dvs128_model():
    widths = dict(channels=(4, 8, 8), hidden=16, height=16, width=16)
    dvs128 = create_model("dvs128_gesture_authors", **widths)
    assert load_matching_weights(create_model("rgb_gesture_authors", **widths), dvs128.state_dict()) == []
