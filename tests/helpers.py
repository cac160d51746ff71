"""Helpers shared by several test modules (imported as ``helpers``: pytest puts this folder on the path)."""

from __future__ import annotations

import torch
from torch import nn


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking BatchNorm statistics (running mean in [-0.2, 0.2), variance in [0.5, 1.5)), so that the
    norms of an eval-mode network are not the identity; returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()
