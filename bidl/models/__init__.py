"""The paper's networks behind a registry: ``create_model(name, **overrides)``, ``list_models()``."""

from . import dvs128  # noqa: F401  (registers its models)
from .dvs128 import DVS128GestureNet
from .registry import count_parameters, create_model, list_models, load_matching_weights, register_model

__all__ = [
    "DVS128GestureNet",
    "count_parameters",
    "create_model",
    "list_models",
    "load_matching_weights",
    "register_model",
]
