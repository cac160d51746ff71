"""Neuron math as plain functions: the single source of truth for modules, exporters and kernels."""

from .lif import (
    LIAF_MODES,
    LIAF_READOUTS,
    RESET_MODES,
    add_training_noise,
    cmp_and_fire,
    fire,
    integrate,
    leak,
    lif_multi_step,
    lif_step,
    reset_membrane,
    reset_with_decay,
)
from .surrogate import (
    SURROGATE_NAMES,
    ArctanSpike,
    RectangleSpike,
    SigmoidSpike,
    arctan,
    get_surrogate,
    rectangle,
    sigmoid,
)

__all__ = [
    "LIAF_MODES",
    "LIAF_READOUTS",
    "RESET_MODES",
    "SURROGATE_NAMES",
    "ArctanSpike",
    "RectangleSpike",
    "SigmoidSpike",
    "add_training_noise",
    "arctan",
    "cmp_and_fire",
    "fire",
    "get_surrogate",
    "integrate",
    "leak",
    "lif_multi_step",
    "lif_step",
    "rectangle",
    "reset_membrane",
    "reset_with_decay",
    "sigmoid",
]
