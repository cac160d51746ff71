"""A registry of the paper's networks: ``create_model(name, **overrides)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "count_parameters"]

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
