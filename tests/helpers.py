"""Helpers shared by several test modules (imported as ``helpers``: pytest puts this folder on the path)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking BatchNorm statistics (running mean in [-0.2, 0.2), variance in [0.5, 1.5)), so that the
    norms of an eval-mode network are not the identity; returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


def tiny_dvs128_preset(name: str, description: str, experiment: str, epochs: int) -> dict:
    """A preset of one small DVS128 network (the default preset's network at widths 4/8/8, hidden 16, on 16x16
    frames of 12 steps) on a small stand-in (4 users, 1 of them to test, one repetition per class), trained
    ``epochs`` epochs with the default preset's first seed alone: the test runs of the pipeline."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dvs = base["datasets"]["dvs128_gesture"]
    model_kwargs = {**base["experiments"]["dvs128_asm"]["model_kwargs"], "channels": [4, 8, 8], "hidden": 16}
    return {
        "name": name,
        "description": description,
        "seeds": base["seeds"][:1],
        "device": "cpu",
        "threads": 1,
        "deterministic": True,
        "datasets": {
            "dvs128_gesture": {
                "source": "standin",
                "standin": {**dvs["standin"], "n_users": 4, "n_test_users": 1, "reps_per_class": 1},
                "preprocess": {**dvs["preprocess"], "n_frames": 12, "size": 16},
            }
        },
        "experiments": {
            experiment: {
                "dataset": "dvs128_gesture",
                "model": "dvs128_gesture",
                "model_kwargs": {**model_kwargs, "height": 16, "width": 16},
                "paper": base["experiments"]["dvs128_asm"]["paper"],
                "recipe": {
                    "optimizer": "adam",
                    "lr": 1.0e-2,
                    "schedule": "cosine",
                    "epochs": epochs,
                    "batch_size": 8,
                    "fp16": False,
                },
            }
        },
    }
