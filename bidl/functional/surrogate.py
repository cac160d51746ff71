r"""Surrogate gradients for the spike non-linearity.

The forward pass of every function here is the Heaviside step :math:`F = 1[x > 0]` (strict, as in the
authors' code, with :math:`x = U - \theta`); the backward pass replaces the step's derivative, which is
zero almost everywhere, by a smooth or box-shaped pseudo-derivative:

- ``rectangle`` (the authors' default): :math:`\partial F/\partial x = \frac{1}{w} 1[|x| < w/2]`; with the
  default width :math:`w = 1` this is exactly BIDL's ``ThreshActRectangleGrad`` (1 on :math:`|x| < 0.5`).
- ``sigmoid``: :math:`\partial F/\partial x = k\,\sigma(kx)(1-\sigma(kx))`, default :math:`k = 4`.
- ``arctan``: :math:`\partial F/\partial x = \frac{k/2}{1 + (\frac{\pi}{2} k x)^2}`, default :math:`k = 2`
  (SpikingJelly's ``ATan``).

Inference always uses the hard step; only gradients differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

__all__ = [
    "RectangleSpike",
    "SigmoidSpike",
    "ArctanSpike",
    "rectangle",
    "sigmoid",
    "arctan",
    "get_surrogate",
    "SURROGATE_NAMES",
]


class RectangleSpike(torch.autograd.Function):
    """Heaviside forward, box-shaped gradient of width ``width`` and area 1 backward."""

    @staticmethod
    def forward(ctx, x: Tensor, width: float = 1.0) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        width = ctx.width
        window = (x.abs() < width / 2).to(grad_output.dtype) / width
        return grad_output * window, None


class SigmoidSpike(torch.autograd.Function):
    """Heaviside forward, derivative of ``sigmoid(k x)`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, k: float = 4.0) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.k = k
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.k * x)
        return grad_output * ctx.k * s * (1 - s), None


class ArctanSpike(torch.autograd.Function):
    """Heaviside forward, derivative of ``arctan(pi/2 k x)/pi + 1/2`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, k: float = 2.0) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.k = k
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        k = ctx.k
        return grad_output * (k / 2) / (1 + (math.pi / 2 * k * x) ** 2), None


def rectangle(x: Tensor, width: float = 1.0) -> Tensor:
    """Spike of ``x = U - theta`` with the rectangle surrogate gradient (authors' default)."""
    return RectangleSpike.apply(x, width)


def sigmoid(x: Tensor, k: float = 4.0) -> Tensor:
    """Spike of ``x = U - theta`` with the sigmoid surrogate gradient."""
    return SigmoidSpike.apply(x, k)


def arctan(x: Tensor, k: float = 2.0) -> Tensor:
    """Spike of ``x = U - theta`` with the arctan surrogate gradient."""
    return ArctanSpike.apply(x, k)


_BUILDERS: dict[str, tuple[Callable[..., Tensor], str]] = {
    "rectangle": (rectangle, "width"),
    "sigmoid": (sigmoid, "k"),
    "arctan": (arctan, "k"),
}
SURROGATE_NAMES = tuple(_BUILDERS)


def get_surrogate(name: str, scale: float | None = None) -> Callable[[Tensor], Tensor]:
    """Return the spike function ``x -> F`` named ``name``.

    ``scale`` is the rectangle's width or the sigmoid's / arctan's steepness ``k``; ``None`` keeps the
    default. Raises ``ValueError`` naming the unknown surrogate.
    """
    try:
        fn, key = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"surrogate: unknown name {name!r}; choose one of {SURROGATE_NAMES}") from None
    return fn if scale is None else partial(fn, **{key: float(scale)})
