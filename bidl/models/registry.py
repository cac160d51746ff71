"""A registry of the paper's networks: ``create_model(name, **overrides)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "AUTHORS_NEURON",
    "authors_neuron",
    "register_model",
    "create_model",
    "list_models",
    "count_parameters",
    "load_matching_weights",
    "load_trained",
]

AUTHORS_NEURON: dict[str, Any] = {
    "alpha": 0.3,
    "beta": 0.0,
    "theta": 0.5,
    "v_reset": 0.0,
    "reset": "hard",
    "sharing": "all",
    "learnable": False,
    "surrogate": "rectangle",
}
"""The neuron constants of every authors' config: fixed (not learned) alpha 0.3, beta 0, theta 0.5,
v_reset 0, hard reset, ASM, rectangular surrogate gradient."""


def authors_neuron(given: Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
    """The neuron keyword arguments of an ``_authors`` builder: :data:`AUTHORS_NEURON`, then the builder's
    own ``defaults`` (e.g. its training noise), then what the caller ``given``."""
    return {**AUTHORS_NEURON, **defaults, **given}


_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a keyword-only model builder under its function name (import-time only)."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **overrides) -> nn.Module:
    """Build the registered model ``name`` with keyword ``overrides`` of its defaults.

    Raises ``KeyError`` naming the unknown model, ``TypeError`` naming an unknown keyword.
    """
    try:
        builder = _MODELS[name]
    except KeyError:
        raise KeyError(f"model: unknown name {name!r}; registered: {list_models()}") from None
    return builder(**overrides)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def load_matching_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state_dict`` whose name and shape match one of ``model``'s into it (e.g. a
    trained DVS128 network into the RGB-gesture network, as the paper initialises it); return the names of
    ``model``'s entries that kept their own values (absent from ``state_dict`` or shaped differently)."""
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching))


def load_trained(experiment: Mapping[str, Any], weights: str | Path) -> nn.Module:
    """The network of a pipeline ``experiment`` (its ``model`` and ``model_kwargs``) with the trained
    ``weights`` (a ``model.pt`` state dict, loaded with ``weights_only=True``)."""
    from ..io import load_checkpoint

    model = create_model(experiment["model"], **experiment.get("model_kwargs", {}))
    model.load_state_dict(load_checkpoint(weights))
    return model
