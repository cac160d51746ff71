"""The RGB-gesture network of the paper (section 5.1.1, Table 2; authors' ``SeqClif3Flif2DgItout`` with the
config ``clif3flif2rg/clif3flif2rg_itout-b16x1-rgbgesture.py``).

The DVS128 Gesture network (:class:`~bidl.models.dvs128.DVS128GestureNet`) on 2-channel difference frames
``[B, 60, 2, 40, 40]`` (brighter / darker pixels of adjacent grey frames); the output is the mean spike rate
of the class neurons. The paper initialises it from the trained DVS128 model ("We also use the pre-trained
model trained on the DVS128 Gesture dataset", section 5.1.1): :func:`load_matching_weights` copies every
tensor whose name and shape match, which with 10 classes is everything but the output layer ``fc2``.

Paper (:func:`rgb_gesture`, as :func:`~bidl.models.dvs128.dvs128_gesture`) vs authors' code
(:func:`rgb_gesture_authors`, as :func:`~bidl.models.dvs128.dvs128_gesture_authors`):

- output layer: the paper's dataset "contains 10 moving gestures" (section 5.1.1) -> ``n_classes=10``; the
  config keeps the DVS128 network's ``nclass=11`` (one output neuron never a target), so the whole DVS128
  model, output layer included, fits it.
- initialisation: the paper starts from DVS128 weights; the config has ``load_from = None`` (a training
  script must load them: see :func:`load_matching_weights`).
- neuron parameters: learned in the paper's variant ("The neuron parameters were trained", said of DVS128,
  section 5.1.2), fixed in the authors' code; other differences as in :mod:`bidl.models.dvs128`.

Shared, from the config: LIF in every layer (``cmode='spike', fmode='spike'``), ASM, training noise 1e-3.
Parameters at the defaults: ``rgb_gesture`` 2,012,918 (2,013,157 - 259 for the 11th output neuron + 20
learned neuron scalars), ``rgb_gesture_authors`` 2,013,157 (= DVS128).
"""

from __future__ import annotations

from .dvs128 import DVS128GestureNet, dvs128_gesture, dvs128_gesture_authors
from .registry import load_matching_weights, register_model

__all__ = ["load_matching_weights", "rgb_gesture", "rgb_gesture_authors"]

N_CLASSES = 10
"""The paper's output neurons: the 10 gestures (the rest of the architecture is :mod:`bidl.models.dvs128`'s;
the authors' config keeps its 11)."""


@register_model
def rgb_gesture(*, n_classes: int = N_CLASSES, **kwargs) -> DVS128GestureNet:
    """The paper's RGB-gesture network: :func:`~bidl.models.dvs128.dvs128_gesture` with 10 classes,
    ``[B, 60, 2, 40, 40]`` -> 10 mean spike rates. Keyword arguments as that builder."""
    return dvs128_gesture(n_classes=n_classes, **kwargs)


@register_model
def rgb_gesture_authors(*, n_classes: int = 11, **kwargs) -> DVS128GestureNet:
    """RGB-gesture as the authors' config builds it: :func:`~bidl.models.dvs128.dvs128_gesture_authors`
    unchanged, 11 output neurons for 10 gestures (``nclass=11``). Keyword arguments as that builder."""
    return dvs128_gesture_authors(n_classes=n_classes, **kwargs)
