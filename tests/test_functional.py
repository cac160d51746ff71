"""The neuron math of bidl.functional: hand-computed traces, surrogate gradients, multi-step == steps."""

import math

import pytest
import torch

from bidl.functional import (
    arctan,
    cmp_and_fire,
    get_surrogate,
    lif_multi_step,
    lif_step,
    rectangle,
    reset_with_decay,
    sigmoid,
)

INPUTS = torch.tensor([0.4, 0.5, 0.8])  # X_1..X_3 for one neuron


def trace(**kwargs):
    y, v = lif_multi_step(INPUTS.view(3, 1), alpha=0.5, beta=0.1, theta=0.5, v_reset=-0.2, **kwargs)
    return y.flatten().tolist(), v.item()


def test_hard_reset_three_step_trace_matches_hand_computation():
    # t1: U=0.4 (no spike), V=0.5*0.4+0.1=0.3 | t2: U=0.8 > 0.5 spike, R=-0.2, V=0.5*-0.2+0.1=0.0
    # t3: U=0.8 spike, V=0.0
    spikes, v = trace(reset="hard")
    assert spikes == [0.0, 1.0, 1.0]
    assert v == pytest.approx(0.0)


def test_soft_reset_three_step_trace_matches_hand_computation():
    # t1: U=0.4, V=0.3 | t2: U=0.8 spike, R=0.8-0.5=0.3, V=0.25 | t3: U=1.05 spike, R=0.55, V=0.375
    spikes, v = trace(reset="soft")
    assert spikes == [0.0, 1.0, 1.0]
    assert v == pytest.approx(0.375)


def test_fire_is_strictly_greater_than_threshold():
    y, _ = lif_step(torch.tensor([0.5, 0.5000001]), torch.zeros(2), theta=0.5)
    assert y.tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("mode", "readout", "expected"),
    [
        ("NTR", "pre_reset", [0.4, 0.8, 0.8]),  # relu(U)
        ("TR", "pre_reset", [0.0, 0.3, 0.3]),  # relu(U - theta)
        ("NTR", "post_leak", [0.3, 0.0, 0.0]),  # relu(V_t), the paper's eq. 11
    ],
)
def test_liaf_output_modes_three_step_trace(mode, readout, expected):
    y, _ = lif_multi_step(
        INPUTS.view(3, 1),
        alpha=0.5,
        beta=0.1,
        theta=0.5,
        v_reset=-0.2,
        analog=True,
        liaf_mode=mode,
        liaf_readout=readout,
    )
    assert y.flatten().tolist() == pytest.approx(expected)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_multi_step_equals_explicit_step_loop(reset):
    torch.manual_seed(0)
    x = torch.randn(7, 3, 4, 5, 5)
    alpha = torch.rand(1, 4, 1, 1)
    y_seq, v_final = lif_multi_step(x, alpha=alpha, theta=0.3, reset=reset)
    v = torch.zeros_like(x[0])
    for t in range(7):
        y, v = lif_step(x[t], v, alpha=alpha, theta=0.3, reset=reset)
        assert torch.equal(y, y_seq[t])
    assert torch.equal(v, v_final)


def test_multi_step_starts_from_the_given_state():
    x = torch.zeros(2, 1)
    y, v = lif_multi_step(x, torch.tensor([1.0]), alpha=1.0, theta=0.5, reset="hard")
    assert y.flatten().tolist() == [1.0, 0.0]  # the initial state alone makes it fire once
    assert v.item() == 0.0


def test_rectangle_surrogate_gradient_is_one_inside_the_window():
    x = torch.tensor([-0.6, -0.49, 0.0, 0.3, 0.49, 0.51], requires_grad=True)
    rectangle(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_rectangle_width_parameter_scales_window_and_height():
    x = torch.tensor([0.0, 0.9, 1.1], requires_grad=True)
    rectangle(x, 2.0).sum().backward()
    assert x.grad.tolist() == [0.5, 0.5, 0.0]


def test_sigmoid_and_arctan_surrogate_gradient_values():
    x = torch.tensor([0.0, 0.5], requires_grad=True)
    sigmoid(x, 4.0).sum().backward()
    s = 1 / (1 + math.exp(-2.0))
    assert x.grad.tolist() == pytest.approx([1.0, 4 * s * (1 - s)])
    x = torch.tensor([0.0, 0.5], requires_grad=True)
    arctan(x, 2.0).sum().backward()
    assert x.grad.tolist() == pytest.approx([1.0, 1.0 / (1 + (math.pi / 2) ** 2)])


def test_surrogates_forward_is_the_heaviside_step():
    x = torch.tensor([-1.0, 0.0, 1e-6, 2.0])
    for name in ("rectangle", "sigmoid", "arctan"):
        assert get_surrogate(name)(x).tolist() == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="unknown name 'box'"):
        get_surrogate("box")


def test_inference_builtins_equal_the_training_math():
    torch.manual_seed(1)
    x, v = torch.randn(100), torch.randn(100)
    u = x + v
    spike, v_next = lif_step(x, v, alpha=0.3, beta=0.05, theta=0.5, v_reset=-0.1)
    assert torch.equal(cmp_and_fire(u, 0.5), spike)
    assert torch.allclose(reset_with_decay(u, spike, -0.1, 0.3, 0.05), v_next)


def test_training_noise_perturbs_membrane_without_gradient_path():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    y_clean, v_clean = lif_step(x, torch.zeros_like(x), noise=0.0)
    y_noisy, v_noisy = lif_step(x, torch.zeros_like(x), noise=0.1)
    assert not torch.equal(v_clean, v_noisy)
    assert (v_clean - v_noisy).abs().max() < 0.3 * 0.1 * 6 * x.std()
    v_noisy.sum().backward()
    assert torch.isfinite(x.grad).all()
