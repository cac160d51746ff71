r"""The conventional spatio-temporal layers BIDL's ST blocks are compared with (paper Table 1, Fig. 2A):
a causal Conv3D, a ConvLSTM and an LSTM, each in both iteration modes.

Every layer takes batch-first sequences in IIM (``[B, T, C, H, W]``, or ``[B, T, F]`` for the LSTM) and one
step per call in EIM (``[B, C, H, W]`` / ``[B, F]``), like the ST blocks, so that the same evaluation,
streaming and cost code runs on them; IIM and EIM give the same outputs.

- :class:`CausalConv3d`: a ``U x I x J`` convolution over (time, height, width) whose temporal window ends at
  the current frame (``U - 1`` zero frames before the first): it can stream, holding the last ``U - 1``
  input frames in EIM. ``T*H*W*C*U*I*J*K`` multiply-accumulates: ``U`` times a time-distributed Conv2D.
- :class:`ConvLSTM` (Shi et al. 2015, without peepholes): the four gates are convolutions of the input and
  of the previous hidden state,

  .. math::

      [i, f, g, o] &= W_x * X_t + W_h * H_{t-1} + b \\
      C_t &= \sigma(f) \odot C_{t-1} + \sigma(i) \odot \tanh(g) \\
      H_t &= \sigma(o) \odot \tanh(C_t)

  ``4*T*H*W*C*I*J*(K + C)`` multiply-accumulates (``W_x`` may stride; ``W_h`` keeps the output size).
  ``norm=True`` puts BatchNorm on the input's gate pre-activations ``W_x * X_t`` (over all ``B*T`` frames in
  IIM; the recurrent batch normalisation of Cooijmans et al. 2017 on the input path, the same place as the ST
  blocks' BatchNorm on the synaptic current); at inference it folds into ``W_x``.
- :class:`LSTM`: the same cell with linear maps, ``4*T*C*(K + C)`` multiply-accumulates.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .state import StatefulModule

__all__ = ["CausalConv3d", "ConvLSTM", "LSTM", "lstm_cell"]


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value,) * 3 if isinstance(value, int) else tuple(value)


def lstm_cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM update from the summed gate pre-activations ``[B, 4C, ...]`` (order i, f, g, o) and the
    previous cell state ``[B, C, ...]``: returns ``(h, c)``."""
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


class CausalConv3d(StatefulModule):
    """Conv3D over (time, height, width) with a causal temporal window: output ``t`` sees frames
    ``t-U+1 .. t``. Spatial ``stride`` / ``padding`` as in ``nn.Conv2d``; temporal stride 1.

    Example:
        >>> layer = CausalConv3d(2, 4, (3, 3, 3), padding=1)
        >>> layer(torch.rand(1, 5, 2, 8, 8)).shape
        torch.Size([1, 5, 4, 8, 8])
    """

    state_attributes = ("frames",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool = True,
        iteration: str = "internal",
    ):
        super().__init__(iteration)
        u, kh, kw = _triple(kernel_size)
        self.window = u
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (u, kh, kw),
            stride=(1, stride, stride),
            padding=(0, padding, padding),
            bias=bias,
        )
        self.frames: Tensor | None = None  # EIM: the last U - 1 input frames, [B, C, U-1, H, W]

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "internal":
            if x.dim() != 5:
                raise ValueError(f"CausalConv3d in IIM expects [B, T, C, H, W], got shape {tuple(x.shape)}")
            clip = F.pad(x.transpose(1, 2), (0, 0, 0, 0, self.window - 1, 0))  # zero frames before t = 0
            return self.conv(clip).transpose(1, 2)
        if x.dim() != 4:
            raise ValueError(f"CausalConv3d in EIM expects [B, C, H, W], got shape {tuple(x.shape)}")
        frame = x.unsqueeze(2)
        if self.frames is None:
            self.frames = x.new_zeros(*frame.shape[:2], self.window - 1, *frame.shape[3:])
        clip = torch.cat([self.frames, frame], dim=2)
        self.frames = clip[:, :, 1:]
        return self.conv(clip).squeeze(2)

    def reset_state(self) -> None:
        self.frames = None


class _Recurrent(StatefulModule):
    """The loop of an LSTM-like layer: input maps run on all ``B*T`` steps at once in IIM, the recurrent map
    step by step; EIM holds ``(h, c)``."""

    def __init__(
        self,
        input_map: nn.Module,
        hidden_map: nn.Module,
        hidden: int,
        iteration: str,
        norm: nn.Module | None = None,
    ):
        super().__init__(iteration)
        self.input_map = input_map
        self.input_norm = norm  # optional BatchNorm of the input path's gate pre-activations
        self.hidden_map = hidden_map
        self.hidden = hidden
        self.state: tuple[Tensor, Tensor] | None = None

    def _input_gates(self, x: Tensor) -> Tensor:
        gates = self.input_map(x)
        return gates if self.input_norm is None else self.input_norm(gates)

    def _step(self, x_gates: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        if state is None:  # zero state: W_h * 0 still runs, so every step costs the same
            shape = (x_gates.shape[0], self.hidden, *x_gates.shape[2:])
            state = (x_gates.new_zeros(shape), x_gates.new_zeros(shape))
        h, c = state
        return lstm_cell(x_gates + self.hidden_map(h), c)

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "external":
            self.state = self._step(self._input_gates(x), self.state)
            return self.state[0]
        b, t = x.shape[:2]
        x_gates = self._input_gates(x.reshape(b * t, *x.shape[2:]))
        x_gates = x_gates.reshape(b, t, *x_gates.shape[1:])
        state, outputs = None, []
        for step_gates in x_gates.unbind(1):  # (indexing per step would cost O(T^2) in the backward pass)
            state = self._step(step_gates, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)

    def reset_state(self) -> None:
        self.state = None

    def get_state(self) -> dict[str, Tensor]:
        """The hidden output ``h`` and the cell ``c``."""
        return {} if self.state is None else {"h": self.state[0], "c": self.state[1]}

    def set_state(self, state: Mapping[str, Tensor]) -> None:
        if set(state) != {"h", "c"}:
            raise KeyError(f"{type(self).__name__}: state needs exactly ['c', 'h'], got {sorted(state)}")
        self.state = (state["h"], state["c"])


class ConvLSTM(_Recurrent):
    """ConvLSTM layer (see the module docstring): ``[B, T, K, H, W] -> [B, T, C, H', W']``.

    Example:
        >>> layer = ConvLSTM(2, 4, 3, stride=2, padding=1)
        >>> layer(torch.rand(1, 5, 2, 8, 8)).shape
        torch.Size([1, 5, 4, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        *,
        bias: bool = True,
        norm: bool = False,
        iteration: str = "internal",
    ):
        padding = kernel_size // 2 if padding is None else padding
        input_map = nn.Conv2d(in_channels, 4 * hidden_channels, kernel_size, stride, padding, bias=bias)
        hidden_map = nn.Conv2d(
            hidden_channels, 4 * hidden_channels, kernel_size, 1, kernel_size // 2, bias=False
        )
        bn = nn.BatchNorm2d(4 * hidden_channels) if norm else None
        super().__init__(input_map, hidden_map, hidden_channels, iteration, norm=bn)


class LSTM(_Recurrent):
    """LSTM layer (see the module docstring): ``[B, T, K] -> [B, T, C]``.

    Example:
        >>> LSTM(3, 8)(torch.rand(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, in_features: int, hidden: int, *, bias: bool = True, iteration: str = "internal"):
        super().__init__(
            nn.Linear(in_features, 4 * hidden, bias=bias),
            nn.Linear(hidden, 4 * hidden, bias=False),
            hidden,
            iteration,
        )
