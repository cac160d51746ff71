"""BIDL: brain-inspired deep learning in PyTorch.

LIF / LIAF neurons, spatio-temporal blocks, iteration modes (IIM / EIM) and temporal aggregation; see
:mod:`bidl.functional` for the neuron math and :mod:`bidl.models` for the paper's networks.
"""

from .layers import FCLIAF, FCLIF, ConvLIAF, ConvLIF, STBlock, TemporalAggregation, TimeDistributed
from .neurons import LIAF, LIF
from .state import (
    ITERATION_MODES,
    SpatioTemporalModule,
    StatefulModule,
    get_iteration_mode,
    iteration_mode,
    reset_states,
    set_iteration_mode,
)

__version__ = "0.1.0"

__all__ = [
    "FCLIAF",
    "FCLIF",
    "ITERATION_MODES",
    "LIAF",
    "LIF",
    "ConvLIAF",
    "ConvLIF",
    "STBlock",
    "SpatioTemporalModule",
    "StatefulModule",
    "TemporalAggregation",
    "TimeDistributed",
    "get_iteration_mode",
    "iteration_mode",
    "reset_states",
    "set_iteration_mode",
]
