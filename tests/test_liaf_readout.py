"""LIAF's analog readout: the pre-reset membrane (the authors' code, the default) against a hand-computed
trace and against SpikingJelly's LIAFNode; the paper builders' default readout."""

import pytest
import torch
from torch.testing import assert_close

import bidl.models.imdb
import bidl.models.resnet  # noqa: F401  (the imports register the models)
from bidl import LIAF, set_iteration_mode
from bidl.models import create_model

# One neuron, alpha 0.5, theta 1.0, v_reset 0, beta 0, no norm; inputs X = 0.6, 0.8, 0.3, 1.5.
#   hard reset:
#   t=1: U = 0.6 + 0    = 0.6   no spike   V = 0.5 * 0.6  = 0.3
#   t=2: U = 0.8 + 0.3  = 1.1   spike      V = 0.5 * 0    = 0
#   t=3: U = 0.3 + 0    = 0.3   no spike   V = 0.5 * 0.3  = 0.15
#   t=4: U = 1.5 + 0.15 = 1.65  spike      V = 0.5 * 0    = 0
#   soft reset (R = U - F theta):
#   t=1: U = 0.6                no spike   V = 0.5 * 0.6   = 0.3
#   t=2: U = 0.8 + 0.3  = 1.1   spike      V = 0.5 * 0.1   = 0.05
#   t=3: U = 0.3 + 0.05 = 0.35  no spike   V = 0.5 * 0.35  = 0.175
#   t=4: U = 1.5 + 0.175 = 1.675 spike     V = 0.5 * 0.675 = 0.3375
# pre_reset reads relu(U) (NTR) or relu(U - theta) (TR); post_leak reads relu(V) / relu(V - theta). At the
# steps that fire (t=2, t=4) the two readouts differ.
X = [0.6, 0.8, 0.3, 1.5]
TRACES = [
    ("hard", "NTR", "pre_reset", [0.6, 1.1, 0.3, 1.65]),
    ("hard", "TR", "pre_reset", [0.0, 0.1, 0.0, 0.65]),
    ("hard", "NTR", "post_leak", [0.3, 0.0, 0.15, 0.0]),
    ("soft", "NTR", "pre_reset", [0.6, 1.1, 0.35, 1.675]),
    ("soft", "TR", "pre_reset", [0.0, 0.1, 0.0, 0.675]),
    ("soft", "NTR", "post_leak", [0.3, 0.05, 0.175, 0.3375]),
]


@pytest.mark.parametrize(("reset", "mode", "readout", "expected"), TRACES)
@pytest.mark.parametrize("iteration", ["internal", "external"])
def test_liaf_readout_follows_the_hand_computed_trace(reset, mode, readout, expected, iteration):
    neuron = LIAF(alpha=0.5, theta=1.0, reset=reset, liaf_mode=mode, liaf_readout=readout)
    x = torch.tensor(X, dtype=torch.float64).view(1, 4, 1)
    if iteration == "external":
        set_iteration_mode(neuron, "external")
        y = torch.stack([neuron(x[:, t]) for t in range(4)], 1)
    else:
        y = neuron(x)
    assert_close(y.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_liaf_default_readout_is_pre_reset():
    assert LIAF().liaf_readout == "pre_reset"
    with pytest.raises(ValueError, match="liaf_readout"):
        LIAF(liaf_readout="post_reset")


def _spikingjelly_liaf(alpha, theta, reset, activation, mode):
    """SpikingJelly's LIAFNode parameterised as bidl's LIAF with ``beta = 0``, ``v_reset = 0``.

    SpikingJelly charges ``H = V - (V - v_reset) / tau + X`` (``decay_input=False``) from the state ``V``
    after the reset, and outputs ``act(H)`` (or ``act(H - v_threshold)``, ``threshold_related``) before
    resetting ``H``. bidl's ``U_t = X_t + alpha R_{t-1} + beta`` is this with ``1 - 1/tau = alpha``,
    ``v_reset = 0`` (hard; ``None``: soft) and ``beta = 0``, so ``H_t = U_t`` at every step and both start
    from 0.
    """
    neuron_module = pytest.importorskip("spikingjelly.activation_based.neuron")
    return neuron_module.LIAFNode(
        act=activation,
        threshold_related=mode == "TR",
        tau=1.0 / (1.0 - alpha),
        decay_input=False,
        v_threshold=theta,
        v_reset=0.0 if reset == "hard" else None,
    )


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("mode", ["NTR", "TR"])
@pytest.mark.parametrize(("activation", "act"), [("relu", torch.relu), ("sigmoid", torch.sigmoid)])
def test_pre_reset_readout_matches_spikingjelly_liafnode(reset, mode, activation, act):
    alpha, theta = 0.3, 0.5
    reference = _spikingjelly_liaf(alpha, theta, reset, act, mode)
    torch.manual_seed(0)
    steps = 12
    x = torch.randn(steps, 4, 16, dtype=torch.float64) * 0.6 + 0.2  # [T, B, N]: many neurons fire
    # a single-step loop: in spikingjelly 2.0.0 LIAFNode's multi-step mode returns LIFNode's spikes
    expected = torch.stack([reference(x_t) for x_t in x])
    neuron = LIAF(alpha=alpha, theta=theta, reset=reset, activation=activation, liaf_mode=mode)
    got = neuron(x.transpose(0, 1)).transpose(0, 1)
    assert_close(got, expected)
    spikes = LIAF(alpha=alpha, theta=theta, reset=reset, activation="identity")(x.transpose(0, 1)) > theta
    assert spikes.any(), "the input should make neurons fire, where the two readouts differ"
    post_leak = LIAF(
        alpha=alpha, theta=theta, reset=reset, activation=activation, liaf_mode=mode, liaf_readout="post_leak"
    )
    assert not torch.allclose(post_leak(x.transpose(0, 1)).transpose(0, 1), expected)


def _liaf_readouts(model: torch.nn.Module) -> set[str]:
    return {m.liaf_readout for m in model.modules() if isinstance(m, LIAF)}


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("jester_v1", dict(widths=(4, 8, 8, 8))),
        ("jester_v2", dict(widths=(4, 8, 8, 8))),
        ("jester_v1_authors", dict(widths=(4, 8, 8, 8))),
        ("imdb", dict(vocab_size=30, embedding_dim=8, hidden=16)),
        ("imdb_authors", dict(vocab_size=30, embedding_dim=8, hidden=16)),
    ],
)
def test_liaf_builders_read_before_the_reset_and_keep_eq11_one_keyword_away(name, kwargs):
    assert _liaf_readouts(create_model(name, **kwargs)) == {"pre_reset"}
    assert _liaf_readouts(create_model(name, liaf_readout="post_leak", **kwargs)) == {"post_leak"}


def test_paper_jester_v1_is_the_authors_network_by_default():
    torch.manual_seed(0)
    paper = create_model("jester_v1", widths=(4, 8, 8, 8)).eval()
    authors = create_model("jester_v1_authors", widths=(4, 8, 8, 8)).eval()
    authors.load_state_dict(paper.state_dict())
    x = torch.rand(2, 3, 3, 32, 32) * 2
    with torch.no_grad():
        assert torch.equal(paper(x), authors(x))
