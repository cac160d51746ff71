"""The IMDB sentiment network of the paper (section 5.1.4, Table 2; authors' ``FastTextItout``).

Each token of a review is one timestep; only the last step is read out::

    tokens [B, 500] -> Embedding(vocab, E) -> [B, 500, E] -> FCLIAF(E -> 256) -> last step [B, 256]
    -> Dropout 0.5 -> FC(256 -> n_classes)

Paper (:func:`imdb`) vs authors' code (:func:`imdb_authors`, config ``fasttextIM/fasttext-b16x1-imdb.py``
and ``imdb/backbone.py``):

- embedding width: paper "The data are embedded in a tensor with shape [B, 500, 256]" (section 5.1.4) ->
  ``embedding_dim=256``; the config ``embedding_dim=16``.
- output: the paper's labels are 0 / 1 ("Binary classification was used for labeling") -> 2 logits for
  cross-entropy, ``n_classes=2``; the authors' head is ``nn.Linear(hidden_dim, 1)`` with a sigmoid
  cross-entropy (``CrossEntropyLoss, use_sigmoid=True``) -> ``n_classes=1`` here, output ``[B, 1]``.
  **Training in this repository uses cross-entropy over ``n_classes`` outputs: build ``imdb_authors`` with
  ``n_classes=2`` to train it** (with 1 output the cross-entropy is identically 0).
- LIAF readout: both builders read ``f(U_t)``, the membrane before reset and leak, as the authors' ``Lif``
  does (``memb_mode=(0, relu)``, ``layers/lif.py``) -> ``liaf_readout="pre_reset"``, the code that produced
  the paper's numbers. The paper's eq. 11 taken literally outputs ``f(V_t)`` after reset and leak: a named
  variant, ``liaf_readout="post_leak"``. ReLU, no threshold subtraction ("NTR") in both.
- BatchNorm: the paper's ST block is "convolution, batch normalization, and LIF" (section 2) -> BN on the
  synaptic current, ``norm="input"``; their ``FcLif(norm_state=True)`` puts it on the membrane,
  ``norm="state"``.
- neuron parameters: learned in the paper's variant (SPEC section 1; the paper does not say for IMDB), fixed
  in the authors' code: alpha 0.3, beta 0, theta 0.5, v_reset 0.

Shared: 1001 token ids (the paper's "dictionary of size 1,000" plus padding: ``bidl.data.imdb`` encodes
``0 = <pad>``, ``1..999`` words, ``1000 = <unk>``, as the authors' ``Embedding(1001, ...)``); from the
authors' code where the paper is silent: hidden width 256, Dropout 0.5 before the FC, training noise 1e-3.
Parameters at the defaults: ``imdb`` 323,078; ``imdb_authors`` 21,137 (their count).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..layers import FCLIAF, TemporalAggregation, TimeDistributed
from .registry import authors_neuron, register_model

__all__ = ["IMDBNet", "imdb", "imdb_authors"]

# The architecture at the paper's size, declared once: the builders here and the baseline of this network
# (bidl.models.baselines) take their defaults from these.
VOCAB_SIZE = 1001
"""Token ids: ``0 = <pad>``, ``1..999`` words, ``1000 = <unk>``."""
EMBEDDING_DIM = 256
"""The paper's embedding width (the authors' config: 16)."""
HIDDEN = 256
"""Width of the FCLIAF layer."""
N_CLASSES = 2
"""The paper's outputs: 2 logits for cross-entropy (the authors' code: 1, with a sigmoid)."""
DROPOUT = 0.5
"""Dropout before the FC classifier."""


class IMDBNet(nn.Module):
    """Embedding, an FCLIAF layer over the token sequence, and an FC classifier on its last step.

    Input: token ids, int64 ``[B, L]`` in IIM (``[B]``, the ids of one step, per call in EIM); output
    ``[B, n_classes]``: the logits of the last step (in EIM: of the current step).

    Example:
        >>> import torch
        >>> net = IMDBNet(vocab_size=20, embedding_dim=8, hidden=16, n_classes=2)
        >>> net(torch.randint(0, 20, (3, 7))).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        *,
        vocab_size: int = VOCAB_SIZE,
        embedding_dim: int = EMBEDDING_DIM,
        hidden: int = HIDDEN,
        n_classes: int = N_CLASSES,
        dropout: float = DROPOUT,
        norm: str | None = "state",
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__()
        self.embedding = TimeDistributed(nn.Embedding(vocab_size, embedding_dim), iteration=iteration)
        self.liaf = FCLIAF(embedding_dim, hidden, norm=norm, iteration=iteration, **neuron_kwargs)
        self.last = TemporalAggregation("last", iteration=iteration)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.last(self.liaf(self.embedding(tokens)))
        return self.classifier(self.dropout(hidden))


@register_model
def imdb(
    *,
    embedding_dim: int = EMBEDDING_DIM,
    n_classes: int = N_CLASSES,
    liaf_readout: str = "pre_reset",
    learnable: bool = True,
    norm: str | None = "input",
    **kwargs,
) -> IMDBNet:
    """The paper's IMDB network: ``[B, 500]`` tokens -> 2 logits; 256-wide embedding, FCLIAF with the
    authors' readout ``f(U_t)`` before reset (``liaf_readout="pre_reset"``; ``"post_leak"``: the paper's
    eq. 11 taken literally, ``f(V_t)``), BatchNorm on the synaptic current, learned neuron parameters (see
    the module docstring for each source). Other keyword arguments as :func:`imdb_authors`."""
    return imdb_authors(
        embedding_dim=embedding_dim,
        n_classes=n_classes,
        liaf_readout=liaf_readout,
        learnable=learnable,
        norm=norm,
        **kwargs,
    )


@register_model
def imdb_authors(
    *,
    vocab_size: int = VOCAB_SIZE,
    embedding_dim: int = 16,
    hidden: int = HIDDEN,
    n_classes: int = 1,
    dropout: float = DROPOUT,
    activation: str = "relu",
    liaf_mode: str = "NTR",
    liaf_readout: str = "pre_reset",
    norm: str | None = "state",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> IMDBNet:
    """IMDB as the authors' code builds it: ``Embedding(1001, 16) -> FcLIAF(16 -> 256)`` with BatchNorm on the
    membrane, fixed neuron parameters and the pre-reset readout ``relu(U)``, ``Dropout(0.5) -> Linear(256 ->
    1)`` on the last step; 21,137 trainable parameters. Pass ``n_classes=2`` to train it with this
    repository's cross-entropy loop.
    ``neuron_kwargs``: the neuron keywords (``alpha``, ``beta``, ``theta``, ``v_reset``, ``reset``,
    ``sharing``, ``learnable``, ``noise``, ``surrogate``), by default
    :data:`~bidl.models.registry.AUTHORS_NEURON` and this network's training noise 1e-3.
    """
    return IMDBNet(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden=hidden,
        n_classes=n_classes,
        dropout=dropout,
        norm=norm,
        iteration=iteration,
        activation=activation,
        liaf_mode=liaf_mode,
        liaf_readout=liaf_readout,
        **authors_neuron(neuron_kwargs, noise=1e-3),
    )
