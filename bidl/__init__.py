"""BIDL: brain-inspired deep learning in PyTorch.

LIF / LIAF / LIF+ neurons, spatio-temporal blocks, iteration modes (IIM / EIM) and temporal aggregation; see
:mod:`bidl.functional` for the neuron math, :mod:`bidl.models` for the paper's networks,
:mod:`bidl.plasticity` for local learning (Hebb, STDP, R-STDP, user rules) and :mod:`bidl.colearning` for
global-local co-learning.
"""

from .layers import (
    FCLIAF,
    FCLIF,
    ConvLIAF,
    ConvLIF,
    ConvLIFPlus,
    FCLIFPlus,
    STBlock,
    TemporalAggregation,
    TimeDistributed,
)
from .neurons import LIAF, LIF, LIFPlus, ReLUNeuron
from .plasticity import Plasticity, attach_plasticity, detach_plasticity
from .state import (
    ITERATION_MODES,
    SpatioTemporalModule,
    StatefulModule,
    get_iteration_mode,
    iteration_mode,
    reset_states,
    set_iteration_mode,
)
from .stream import compile_stream

__version__ = "0.1.0"

__all__ = [
    "FCLIAF",
    "FCLIF",
    "FCLIFPlus",
    "ITERATION_MODES",
    "LIAF",
    "LIF",
    "LIFPlus",
    "Plasticity",
    "ReLUNeuron",
    "ConvLIAF",
    "ConvLIF",
    "ConvLIFPlus",
    "STBlock",
    "SpatioTemporalModule",
    "StatefulModule",
    "TemporalAggregation",
    "TimeDistributed",
    "attach_plasticity",
    "compile_stream",
    "detach_plasticity",
    "get_iteration_mode",
    "iteration_mode",
    "reset_states",
    "set_iteration_mode",
]
