"""The order probe: on a task whose classes differ only in the order of two events, the order-aware probe
learns it, the order-blind probe cannot, and shuffling the timesteps undoes what the first learned."""

import torch
from torch.utils.data import Dataset

from bidl.probe import OrderProbe, StaticProbe, probe_features, run_probe


class TwoEvents(Dataset):
    """[T=10, 2, 4, 4] frames: a flash in channel 0 and one in channel 1 at two random times; the label
    says which came first. The time-average is the same for both classes."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.zeros(n, 10, 2, 4, 4)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        for i in range(n):
            t1, t2 = sorted(torch.randperm(10, generator=g)[:2].tolist())
            first, second = (0, 1) if self.labels[i] == 0 else (1, 0)
            self.x[i, t1, first] = 1.0
            self.x[i, t2, second] = 1.0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], int(self.labels[i])


def test_features_pool_frames_and_embed_tokens():
    front, width = probe_features(torch.zeros(10, 2, 16, 12), pool=4)
    assert width == 2 * 4 * 4 and front(torch.zeros(3, 2, 16, 12)).shape == (3, 32)
    front, width = probe_features(torch.zeros(50, dtype=torch.long), vocab_size=7)
    assert width == 32 and front(torch.zeros(3, 50, dtype=torch.long)).shape == (3, 50, 32)


def test_probes_map_sequences_to_logits():
    x = torch.rand(5, 10, 2, 4, 4)
    assert OrderProbe(x[0], 3, hidden=8)(x).shape == (5, 3)
    assert StaticProbe(x[0], 3, hidden=8)(x).shape == (5, 3)
    # the order-blind probe gives the same output for any order of the timesteps
    static = StaticProbe(x[0], 3, hidden=8).eval()
    assert torch.allclose(static(x), static(x.flip(1)), atol=1e-6)


def test_run_probe_separates_an_order_task_from_its_controls(tmp_path):
    result = run_probe(
        TwoEvents(320, 0), TwoEvents(200, 1), 2, tmp_path, epochs=15, hidden=32, pool=4, kernel=3
    )
    assert result["order"] >= 90.0, result
    assert result["static"] <= 65.0, result
    assert result["order_time_shuffled"] <= result["order"] - 25.0, result
    assert (tmp_path / "order" / "model.pt").is_file() and (tmp_path / "static" / "history.csv").is_file()
