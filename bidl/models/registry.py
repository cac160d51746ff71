"""A registry of the paper's networks: ``create_model(name, **overrides)``, ``list_models()`` and
``check_model_kwargs(name, kwargs)``, which says what is wrong with a model's keywords before training."""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    "check_model_kwargs",
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


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """What is wrong with building the registered model ``name`` with the keyword arguments ``kwargs``, as
    ``(keyword, problem)`` pairs (keyword ``None`` where the problem is not one keyword's); empty where the
    model builds. ``KeyError`` naming an unknown model, as :func:`create_model`.

    Each value is checked against its keyword's type annotation where the builder, the builders it passes
    its ``**kwargs`` on to, or the neurons that take the rest (:class:`~bidl.neurons.LIF` and its
    subclasses) annotate it; then the model is built on the CPU, without gradients and in a forked random
    state, so that the layers reject what no annotation covers. A keyword that nothing takes is named with
    the keywords the model takes.

    Example:
        >>> import bidl.models  # registers the networks
        >>> for key, problem in check_model_kwargs("imdb_lstm", {"hidden": "big", "hiden": 64}):
        ...     print(f"{key}: {problem}")  # doctest: +NORMALIZE_WHITESPACE
        hidden: 'big' is not an integer (model 'imdb_lstm' takes hidden: int)
        hiden: model 'imdb_lstm' takes no keyword 'hiden' (did you mean 'hidden'?); it takes: dropout,
        embedding_dim, hidden, iteration, n_classes, vocab_size
    """
    if name not in _MODELS:
        raise KeyError(f"model: unknown name {name!r}; registered: {list_models()}")
    declared, passes_on = _builder_keywords(name)
    neuron = _neuron_keywords(_neuron_classes()) if passes_on else {}
    problems: list[tuple[str | None, str]] = []
    mistyped = set()
    for key, value in kwargs.items():
        keyword = declared.get(key) or neuron.get(key)
        if keyword is not None and not _matches(value, keyword.hint):
            problems.append((key, f"{value!r} is not {_describe(keyword.hint)} (model {name!r} takes {key}: "
                                  f"{keyword.text})"))  # fmt: skip
            mistyped.add(key)
    model, unknown, fixed, error = _build(
        _MODELS[name], {k: v for k, v in kwargs.items() if k not in mistyped}
    )
    if unknown:
        if passes_on and model is not None:
            neuron = _neuron_keywords({type(m) for m in model.modules() if type(m) in _neuron_classes()})
        accepted = sorted(set(declared) | set(neuron))
        for key in unknown:
            close = difflib.get_close_matches(key, accepted, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                (key, f"model {name!r} takes no keyword {key!r}{guess}; it takes: {', '.join(accepted)}")
            )
    for key in fixed:
        problems.append((key, f"model {name!r} sets {key} itself; leave it out"))
    if error is not None:
        key = next((k for k in kwargs if str(error).startswith(f"{k}:")), None)
        problems.append((key, f"model {name!r} cannot be built: {type(error).__name__}: {error}"))
    return problems


@dataclass(frozen=True)
class _Keyword:
    hint: Any  # the evaluated annotation (Any where there is none)
    text: str  # the annotation as written


# what the ST blocks give their neurons themselves (a builder's keyword of the same name means something else)
_SET_BY_BLOCKS = frozenset({"channels", "norm", "iteration"})


def _keywords(fn: Callable[..., Any]) -> tuple[dict[str, _Keyword], bool]:
    """The keyword parameters of ``fn`` with their annotations, and whether it takes ``**kwargs``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that cannot be evaluated here: its keywords are checked by building
        hints = {}
    keywords, var_keyword = {}, False
    for parameter in list(inspect.signature(fn).parameters.values()):
        if parameter.kind is parameter.VAR_KEYWORD:
            var_keyword = True
        elif parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.name == "self":
                continue
            raw = parameter.annotation
            text = (
                "any"
                if raw is parameter.empty
                else raw
                if isinstance(raw, str)
                else inspect.formatannotation(raw)
            )
            keywords[parameter.name] = _Keyword(hints.get(parameter.name, Any), text)
    return keywords, var_keyword


def _builder_keywords(name: str) -> tuple[dict[str, _Keyword], bool]:
    """The keywords of builder ``name`` and of the registered builders it passes its ``**kwargs`` on to
    (the one it calls), and whether the last of them passes ``**kwargs`` on to its network's neurons."""
    fn, seen, keywords = _MODELS[name], {name}, {}
    while True:
        own, passes_on = _keywords(fn)
        for key, keyword in own.items():
            keywords.setdefault(key, keyword)
        called = [
            n
            for n in getattr(getattr(fn, "__code__", None), "co_names", ())
            if n in _MODELS and n not in seen
        ]
        if not passes_on or len(called) != 1:
            return keywords, passes_on
        seen.add(called[0])
        fn = _MODELS[called[0]]


def _neuron_classes() -> set[type]:
    """:class:`~bidl.neurons.LIF` and every subclass of it."""
    from ..neurons import LIF

    classes, todo = set(), [LIF]
    while todo:
        cls = todo.pop()
        classes.add(cls)
        todo += cls.__subclasses__()
    return classes


def _neuron_keywords(classes: set[type]) -> dict[str, _Keyword]:
    """The keywords the neuron ``classes`` take from a builder (their own and, through ``**kwargs``, their
    bases'; LIF+ also its constants), without those the ST blocks set."""
    from ..functional import LIFPLUS_CONSTANTS
    from ..neurons import LIFPlus

    keywords: dict[str, _Keyword] = {}
    for cls in sorted(classes, key=lambda c: c.__qualname__):
        for base in cls.__mro__:
            if "__init__" not in vars(base):
                continue
            own, var_keyword = _keywords(base.__init__)
            for key, keyword in own.items():
                if key not in _SET_BY_BLOCKS:
                    keywords.setdefault(key, keyword)
            if not var_keyword:
                break
        if issubclass(cls, LIFPlus):
            for key in LIFPLUS_CONSTANTS:
                keywords.setdefault(key, _Keyword(float, "float"))
    return keywords


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_MULTIPLE = re.compile(r"got multiple values for keyword argument '(\w+)'")
_UNKNOWN_LISTED = re.compile(
    r"^(\w+(?:, \w+)*): unknown \w+ keyword"
)  # LIFPlus: "a, b: unknown LIFPlus keyword"


def _build(
    builder: Callable[..., nn.Module], kwargs: Mapping[str, Any]
) -> tuple[nn.Module | None, list[str], list[str], Exception | None]:
    """Build on the CPU, leaving out each keyword the model rejects as unknown (or sets itself) and building
    again: ``(model or None, unknown keywords, keywords it sets itself, the error that stopped it)``."""
    kwargs, unknown, fixed = dict(kwargs), [], []
    while True:
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                return builder(**kwargs), unknown, fixed, None
        except TypeError as err:
            text = str(err)
            listed = _UNKNOWN_LISTED.match(text)
            names = listed.group(1).split(", ") if listed else _UNEXPECTED.findall(text)
            if names and all(n in kwargs for n in names):
                unknown += names
            elif (multiple := _MULTIPLE.search(text)) and multiple.group(1) in kwargs:
                names = [multiple.group(1)]
                fixed += names
            else:
                return None, unknown, fixed, err
            for key in names:
                del kwargs[key]
        except Exception as err:  # any other failure: the keywords' values as given cannot build the model
            return None, unknown, fixed, err


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config ``value`` (YAML: None, bool, int, float, str, list, dict) fits the annotation
    ``hint``; True where the annotation is not one this checks (the model's build checks it then)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if inspect.isclass(hint) and origin is None:
        return isinstance(value, hint)
    return True


_WORDS = {bool: ("a boolean", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), type(None): ("null", "nulls")}  # fmt: skip


def _describe(hint: Any, plural: bool = False) -> str:
    """``int`` -> 'an integer', ``Sequence[int]`` -> 'a list of integers', ``str | None`` -> 'a string or
    null'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None:
        hint = type(None)
    if hint in _WORDS:
        return _WORDS[hint][plural]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple, collections.abc.Sequence):
        item = args[0] if args and (origin is not tuple or args[-1] is Ellipsis) else None
        return ("lists" if plural else "a list") + (
            f" of {_describe(item, True)}" if item is not None else ""
        )
    if origin in (dict, collections.abc.Mapping):
        return "mappings" if plural else "a mapping"
    return f"{getattr(hint, '__name__', hint)}" + ("s" if plural else "")


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
