"""Evaluation in IIM and EIM, their agreement, and the time-shuffled control."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .state import iteration_mode, reset_states

__all__ = ["predict", "shuffle_time", "evaluate_model"]


def shuffle_time(frames: Tensor, generator: torch.Generator) -> Tensor:
    """Permute the time axis of ``[B, T, ...]`` independently for every sample (the order control)."""
    b, t = frames.shape[:2]
    order = torch.argsort(torch.rand(b, t, generator=generator), dim=1)
    index = order.view(b, t, *([1] * (frames.dim() - 2))).expand_as(frames)
    return torch.gather(frames, 1, index)


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    *,
    mode: str = "internal",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    time_shuffle_seed: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Outputs ``[N, K]`` and labels ``[N]`` of ``model`` on ``dataset`` in ``mode`` ("internal"/"external").

    In EIM every batch is streamed one timestep per call after a state reset, and the output is read after
    the last step. With ``time_shuffle_seed`` each sample's frames are shuffled in time first.
    """
    device = torch.device(device)
    model.eval().to(device)
    generator = torch.Generator().manual_seed(time_shuffle_seed) if time_shuffle_seed is not None else None
    outputs, labels = [], []
    with iteration_mode(model, mode):
        for frames, target in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            if generator is not None:
                frames = shuffle_time(frames, generator)
            frames = frames.to(device)
            reset_states(model)
            if mode == "internal":
                out = model(frames)
            else:
                for t in range(frames.shape[1]):
                    out = model(frames[:, t])
            outputs.append(out.float().cpu())
            labels.append(torch.as_tensor(target))
    return torch.cat(outputs), torch.cat(labels)


def _top1(outputs: Tensor, labels: Tensor) -> float:
    return 100.0 * (outputs.argmax(1) == labels).float().mean().item()


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    shuffle_seed: int = 0,
    n_classes: int | None = None,
) -> dict[str, Any]:
    """Top-1 in IIM and EIM, their agreement, the time-shuffled control and a confusion matrix."""
    iim_out, labels = predict(model, dataset, mode="internal", batch_size=batch_size, device=device)
    eim_out, _ = predict(model, dataset, mode="external", batch_size=batch_size, device=device)
    shuffled_out, _ = predict(
        model, dataset, mode="internal", batch_size=batch_size, device=device, time_shuffle_seed=shuffle_seed
    )
    k = n_classes or iim_out.shape[1]
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, iim_out.argmax(1)), torch.ones_like(labels), accumulate=True)
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float() * 100).tolist()
    return {
        "n_samples": int(labels.numel()),
        "top1_iim": round(_top1(iim_out, labels), 3),
        "top1_eim": round(_top1(eim_out, labels), 3),
        "iim_eim_prediction_agreement": round(
            100.0 * (iim_out.argmax(1) == eim_out.argmax(1)).float().mean().item(), 3
        ),
        "iim_eim_max_abs_diff": float((iim_out - eim_out).abs().max().item()),
        "top1_time_shuffled": round(_top1(shuffled_out, labels), 3),
        "time_shuffle_seed": shuffle_seed,
        "per_class_top1": [round(v, 3) for v in per_class],
        "confusion": confusion.tolist(),
    }
