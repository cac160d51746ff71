"""The paper's networks behind a registry: ``create_model(name, **overrides)``, ``list_models()``."""

from . import (  # noqa: F401  (register their models)
    baselines,
    cifar10_dvs,
    dvs128,
    imdb,
    luna16,
    resnet,
    rgb_gesture,
    twins,
)
from .dvs128 import DVS128GestureNet
from .registry import (
    count_parameters,
    create_model,
    list_models,
    load_matching_weights,
    load_trained,
    register_model,
)

__all__ = [
    "DVS128GestureNet",
    "count_parameters",
    "create_model",
    "list_models",
    "load_matching_weights",
    "load_trained",
    "register_model",
]
