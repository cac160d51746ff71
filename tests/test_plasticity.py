"""Local learning: the built-in rules on hand-made spike trains, the plasticity module on linear and conv
synapses (streamed in EIM, detached in IIM), population coding, and the co-learning helpers."""

import pytest
import torch
from torch import nn

from bidl import FCLIF, ConvLIF, reset_states, set_iteration_mode
from bidl.colearning import (
    add_salt_noise,
    interleaved_epoch,
    local_epoch,
    noise_sweep,
    pixel_ratio,
    population_copy,
    signal_density,
    with_population_head,
)
from bidl.models import create_model
from bidl.plasticity import (
    Plasticity,
    attach_plasticity,
    hebb,
    make_rule,
    population_decode,
    population_reward,
    rstdp,
    stdp,
)


def _one_synapse(weight: float = 0.5) -> nn.Linear:
    synapse = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        synapse.weight.fill_(weight)
    return synapse


def _run_trains(rule, pre_train, post_train, reward=None, decay=0.95):
    """Stream the hand-made spike trains (one pre, one post neuron) through a Plasticity; return W - W0."""
    synapse = _one_synapse()
    plasticity = Plasticity(synapse, rule, trace_decay=decay, iteration="external")
    plasticity.reward = reward
    for pre, post in zip(pre_train, post_train, strict=True):
        plasticity.observe(torch.tensor([[float(pre)]]), torch.tensor([[float(post)]]))
    return synapse.weight.item() - 0.5


PRE_FIRST = ([1, 0, 0, 0], [0, 0, 1, 0])  # pre at t=0, post at t=2
POST_FIRST = ([0, 0, 1, 0], [1, 0, 0, 0])  # post at t=0, pre at t=2


def test_stdp_pre_before_post_potentiates_and_post_before_pre_depresses():
    rule = stdp(lr_plus=1e-2, lr_minus=1e-2)
    up = _run_trains(rule, *PRE_FIRST)
    down = _run_trains(rule, *POST_FIRST)
    # by hand: the pre trace at t=2 is 0.95^2 = 0.9025, so dW = +1e-2 * 0.9025 (and -1e-2 * 0.9025 reversed)
    assert up == pytest.approx(1e-2 * 0.95**2, rel=1e-5)
    assert down == pytest.approx(-1e-2 * 0.95**2, rel=1e-5)


def test_stdp_weight_change_shrinks_with_the_spike_interval():
    rule = stdp(lr_plus=1e-2, lr_minus=1e-2)
    near = _run_trains(rule, [1, 0, 0, 0], [0, 1, 0, 0])
    far = _run_trains(rule, [1, 0, 0, 0], [0, 0, 0, 1])
    assert near > far > 0


def test_rstdp_follows_the_sign_of_the_reward():
    rule = rstdp(lr_plus=1e-2, lr_minus=1e-2)
    assert _run_trains(rule, *PRE_FIRST, reward=1.0) > 0
    assert _run_trains(rule, *PRE_FIRST, reward=-1.0) < 0
    assert _run_trains(rule, *PRE_FIRST, reward=0.0) == 0
    assert _run_trains(rule, *POST_FIRST, reward=1.0) < 0
    assert _run_trains(rule, *POST_FIRST, reward=-1.0) > 0
    # the magnitude scales with the reward
    assert _run_trains(rule, *PRE_FIRST, reward=0.5) == pytest.approx(
        _run_trains(rule, *PRE_FIRST, reward=1.0) / 2
    )


def test_rstdp_needs_a_reward():
    with pytest.raises(ValueError, match="reward"):
        _run_trains(rstdp(), *PRE_FIRST, reward=None)


def test_hebb_potentiates_coincident_spikes_only():
    assert _run_trains(hebb(lr=0.1), [1, 0], [1, 0]) == pytest.approx(0.1)
    assert _run_trains(hebb(lr=0.1), [1, 0], [0, 1]) == 0


def test_user_defined_rule_gets_the_documented_arguments():
    seen = {}

    def my_rule(*, pre, post, pre_trace, post_trace, weight, reward, membrane):
        seen.update(pre=pre.shape, post=post.shape, weight=weight.shape, reward=reward, membrane=membrane)
        return torch.full_like(weight, 0.25)

    block = FCLIF(4, 3, norm=None, iteration="external", alpha=0.5, theta=0.1)
    plasticity = attach_plasticity(block, my_rule)
    plasticity.reward = 2.0
    before = block.synapse.weight.detach().clone()
    block(torch.ones(2, 4))
    assert torch.allclose(block.synapse.weight, before + 0.25)
    assert seen["pre"] == (2, 4) and seen["post"] == (2, 3) and seen["weight"] == (3, 4)
    assert seen["reward"] == 2.0 and seen["membrane"].shape == (2, 3)


def test_a_rule_returning_the_wrong_shape_names_the_rule():
    def bad(**_):
        return torch.zeros(2)

    block = FCLIF(4, 3, norm=None, iteration="external")
    attach_plasticity(block, bad)
    with pytest.raises(ValueError, match="bad"):
        block(torch.ones(1, 4))


def test_unknown_rule_and_bad_attachments_raise():
    with pytest.raises(ValueError, match="rule"):
        make_rule("oja")
    with pytest.raises(TypeError, match="ST block"):
        attach_plasticity(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="pooling"):
        attach_plasticity(ConvLIF(1, 2, 3, pooling=2))
    with pytest.raises(TypeError, match="nn.Linear or nn.Conv2d"):
        Plasticity(nn.Conv1d(1, 1, 3))


def test_plasticity_is_detached_in_iim_and_streams_per_step_in_eim():
    torch.manual_seed(0)
    block = FCLIF(6, 4, norm=None, alpha=0.9, theta=0.2)
    plasticity = attach_plasticity(block, "stdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
    x = (torch.rand(2, 8, 6) < 0.5).float()
    before = block.synapse.weight.detach().clone()
    block(x).sum().backward()  # IIM with autograd: BPTT only, no local update
    assert torch.equal(block.synapse.weight, before) and plasticity.updates == 0
    assert block.synapse.weight.grad is not None
    set_iteration_mode(block, "external")
    for t in range(8):
        block(x[:, t])
    assert plasticity.updates == 8
    assert not torch.equal(block.synapse.weight, before)
    assert plasticity.pre_trace is not None
    reset_states(block)
    assert plasticity.pre_trace is None and plasticity.post_trace is None
    plasticity.active = False
    frozen = block.synapse.weight.detach().clone()
    block(x[:, 0])
    assert torch.equal(block.synapse.weight, frozen)


def test_conv_plasticity_equals_the_rule_on_every_patch():
    torch.manual_seed(1)
    block = ConvLIF(2, 3, 3, padding=1, norm=None, alpha=0.5, theta=0.05, iteration="external")
    attach_plasticity(block, "stdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=5e-3))
    x0, x1 = (torch.rand(2, 2, 2, 5, 5) < 0.5).float()
    w0 = block.synapse.weight.detach().clone()
    y0 = block(x0)
    y1 = block(x1)

    # by brute force: every output position is one linear synapse over its 2x3x3 input patch
    def patches(x):
        padded = nn.functional.pad(x, (1, 1, 1, 1))
        return torch.stack(
            [padded[:, :, i : i + 3, j : j + 3].flatten(1) for i in range(5) for j in range(5)], 1
        ).reshape(-1, 18)

    def posts(y):
        return y.permute(0, 2, 3, 1).reshape(-1, 3)

    expected = w0.flatten(1).clone()
    pre_trace, post_trace = None, None
    for x, y in ((x0, y0), (x1, y1)):
        pre_trace = patches(x) if pre_trace is None else 0.95 * pre_trace + patches(x)
        post_trace = posts(y) if post_trace is None else 0.95 * post_trace + posts(y)
        expected += 1e-2 * posts(y).t() @ pre_trace - 5e-3 * post_trace.t() @ patches(x)
    assert y0.sum() > 0 and y1.sum() > 0
    assert torch.allclose(block.synapse.weight.flatten(1), expected, atol=1e-6)


def test_weight_bounds_are_applied():
    block = FCLIF(2, 2, norm=None, iteration="external", theta=-1.0)
    attach_plasticity(block, hebb(lr=10.0), w_max=0.3)
    block(torch.ones(1, 2))
    assert block.synapse.weight.max().item() == pytest.approx(0.3)


def test_population_decoding_picks_the_class_with_the_highest_mean_rate():
    # 3 classes x 4 neurons: class 1 has the single most active neuron, class 2 the highest mean rate
    rates = torch.tensor([[0.1, 0.1, 0.1, 0.1, 0.9, 0.0, 0.0, 0.0, 0.5, 0.5, 0.4, 0.4]])
    scores = population_decode(rates, 3)
    assert torch.allclose(scores, torch.tensor([[0.1, 0.225, 0.45]]))
    assert scores.argmax(1).item() == 2
    with pytest.raises(ValueError, match="population"):
        population_decode(rates, 5)


def test_population_reward_is_label_minus_population_mean():
    post = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])  # 2 classes x 2 neurons, batch 2
    reward = population_reward(post, torch.tensor([0, 1]), 2)
    assert torch.equal(reward, torch.tensor([[0.5, 0.5, -1.0, -1.0], [0.0, 0.0, 0.5, 0.5]]))


def test_salt_noise_sets_exactly_the_ratio_of_pixels_per_plane():
    frames = torch.zeros(2, 3, 2, 10, 10)
    noisy = add_salt_noise(frames, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(noisy.sum((-1, -2)), torch.full((2, 3, 2), 25.0))
    assert torch.equal(add_salt_noise(frames, 0.0), frames)
    assert add_salt_noise(torch.full((1, 4, 4), 3.0), 1.0).eq(1.0).all()
    with pytest.raises(ValueError, match="ratio"):
        add_salt_noise(frames, 1.5)


def _small_dvs(**kwargs):
    return create_model(
        "dvs128_gesture", channels=[4, 8, 8], hidden=16, height=16, width=16, learnable=False, **kwargs
    )


@pytest.mark.parametrize("norm", ["input", "state"])
def test_population_head_starts_as_copies_of_the_trained_head(norm):
    torch.manual_seed(0)
    model = _small_dvs(norm=norm, sharing="channel", alpha=0.8).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    population = with_population_head(model, head="fc2", n_classes=11, population=7, jitter=0.0).eval()
    x = (torch.rand(4, 10, 2, 16, 16) < 0.3).float()
    assert population.fc2.synapse.out_features == 77
    assert torch.allclose(population(x), model(x), atol=1e-5)
    jittered = with_population_head(model, head="fc2", n_classes=11, population=7, jitter=0.1, seed=1)
    assert not torch.equal(jittered.fc2.synapse.weight, population.fc2.synapse.weight)
    # the original is untouched
    assert model.fc2.synapse.out_features == 11
    with pytest.raises(KeyError, match="fc9"):
        with_population_head(model, head="fc9", n_classes=11, population=7)
    with pytest.raises(TypeError, match="linear"):
        population_copy(model.conv1, 7)


def _toy_set(n=6, t=5):
    torch.manual_seed(2)
    return [((torch.rand(t, 2, 16, 16) < 0.3).float(), i % 11) for i in range(n)]


def test_local_epoch_streams_rstdp_on_the_head_only():
    model = with_population_head(_small_dvs(norm="input", alpha=0.8), head="fc2", n_classes=11, population=3)
    plasticity = attach_plasticity(model.fc2, "rstdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
    model.fc2.neuron.theta.fill_(-1.0)  # the head fires at every step, so that the rule has spikes
    before = {k: v.clone() for k, v in model.state_dict().items()}
    top1 = local_epoch(model, _toy_set(), plasticity, n_classes=11)
    assert 0.0 <= top1 <= 100.0
    assert plasticity.updates == 6 * 5  # every timestep of every sample, batch 1
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"fc2.synapse.weight"}


def test_local_epoch_runs_the_unchanged_backbone_in_iim_with_the_same_result(monkeypatch):
    """The backbone (conv1..fc1) computed in IIM a chunk of samples at a time, the plastic head streamed per
    step: the same weights, updates and top-1 as streaming the whole network in EIM."""
    from bidl import colearning

    results = []
    for split in (True, False):
        if not split:
            monkeypatch.setattr(colearning, "_split_at_backbone", lambda model, plasticity: False)
        torch.manual_seed(0)
        model = with_population_head(
            _small_dvs(norm="input", alpha=0.8), head="fc2", n_classes=11, population=3
        )
        plasticity = attach_plasticity(model.fc2, "rstdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
        model.fc2.neuron.theta.fill_(0.05)
        assert colearning._split_at_backbone(model, plasticity) == split
        before = model.fc2.synapse.weight.detach().clone()
        top1 = local_epoch(model, _toy_set(20), plasticity, n_classes=11, order=list(range(19, -1, -1)))
        weight = model.fc2.synapse.weight.detach().clone()
        assert not torch.equal(weight, before)  # the rule did learn
        results.append((top1, plasticity.updates, weight))
    (top1, updates, weight), (top1_ref, updates_ref, weight_ref) = results
    assert updates == updates_ref == 20 * 5 and top1 == top1_ref
    assert torch.equal(weight, weight_ref)


def test_interleaved_epoch_takes_bptt_steps_and_local_updates():
    from bidl.training import freeze_except

    model = with_population_head(_small_dvs(norm="input", alpha=0.8), head="fc2", n_classes=11, population=3)
    frozen = freeze_except(model, ["fc2"])
    plasticity = attach_plasticity(model.fc2, "rstdp")
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    data = _toy_set(4)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    conv_before = model.conv1.synapse.weight.detach().clone()
    bias_before = model.fc2.synapse.bias.detach().clone()
    loss, top1 = interleaved_epoch(
        model, loader, plasticity, optimizer=optimizer, n_classes=11, frozen=frozen
    )
    assert loss > 0 and 0 <= top1 <= 100
    assert plasticity.updates == 4 * 5  # the local rule ran on every streamed step
    assert not torch.equal(model.fc2.synapse.bias, bias_before)  # the bias only learns by BPTT
    assert torch.equal(model.conv1.synapse.weight, conv_before)  # the frozen backbone did not move


def test_noise_sweep_gives_every_network_the_same_noisy_frames():
    model = _small_dvs(norm="input", alpha=0.8).eval()
    rows = noise_sweep({"a": model, "b": model}, _toy_set(5), [0.0, 0.3], batch_size=2)
    assert [(r["network"], r["noise_ratio"]) for r in rows] == [
        ("a", 0.0),
        ("b", 0.0),
        ("a", 0.3),
        ("b", 0.3),
    ]
    assert rows[0]["top1"] == rows[1]["top1"] and rows[2]["top1"] == rows[3]["top1"]
    assert all(r["n_samples"] == 5 for r in rows)


def test_noise_relative_to_events_scales_with_the_signal_density():
    """A ratio relative to the events sets that many noise pixels per event pixel: the density is counted
    over every plane of the set, and the sweep records the share of pixels it set and the density."""
    sparse = [(torch.zeros(3, 2, 10, 10).index_fill_(-1, torch.tensor([0]), 1.0), 0) for _ in range(4)]
    assert signal_density(sparse, batch_size=3) == pytest.approx(0.1)  # one column of ten is active
    assert pixel_ratio(2.0, "events", 0.1) == pytest.approx(0.2) and pixel_ratio(0.3, "pixels") == 0.3
    assert pixel_ratio(20.0, "events", 0.1) == 1.0  # at most every pixel
    with pytest.raises(ValueError, match="relative_to: 'frames' is not one of"):
        pixel_ratio(0.1, "frames", 0.1)
    model = _small_dvs(norm="input", alpha=0.8).eval()
    rows = noise_sweep({"a": model}, _toy_set(4), [0.0, 0.5], batch_size=2, relative_to="events")
    density = signal_density(_toy_set(4))
    assert 0.25 < density < 0.35  # the toy set's 30 % of active pixels
    assert [r["noise_pixel_ratio"] for r in rows] == [0.0, pytest.approx(0.5 * density)]
    assert all(r["noise_relative_to"] == "events" for r in rows)
    assert all(r["signal_density"] == pytest.approx(density) for r in rows)


def test_noise_sweep_runs_a_shared_backbone_once_with_each_networks_own_result(monkeypatch):
    """Two heads on one backbone (as the study's fine-tunings) and a network with another backbone: the
    shared backbone runs once per batch, and every network scores what it scores alone."""
    from bidl import colearning

    torch.manual_seed(0)
    base = _small_dvs(norm="input", alpha=0.8).eval()
    heads = {
        name: with_population_head(base, head="fc2", n_classes=11, population=3, seed=seed).eval()
        for name, seed in (("one", 1), ("two", 2))
    }
    other = _small_dvs(norm="input", alpha=0.8).eval()
    models = {**heads, "other": other}
    assert colearning._backbone_groups(models) == [["one", "two"], ["other"]]
    calls = []
    features = type(base).features
    monkeypatch.setattr(type(base), "features", lambda self, x: calls.append(id(self)) or features(self, x))
    data, ratios = _toy_set(6), [0.0, 0.3]
    rows = noise_sweep(models, data, ratios, batch_size=3)
    assert len(calls) == 2 * 2 * 2  # per ratio and batch: the shared backbone once, the other network once
    for name, model in models.items():
        alone = noise_sweep({name: model}, data, ratios, batch_size=3)
        assert [r["top1"] for r in rows if r["network"] == name] == [r["top1"] for r in alone]


@pytest.mark.parametrize("interleave", [False, True])
def test_train_local_writes_history_and_resumes(tmp_path, interleave):
    from bidl.colearning import train_local
    from bidl.io import load_checkpoint
    from bidl.training import Recipe

    def run(epochs):
        torch.manual_seed(0)
        model = with_population_head(
            _small_dvs(norm="input", alpha=0.8), head="fc2", n_classes=11, population=3
        )
        plasticity = attach_plasticity(model.fc2, "rstdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
        recipe = Recipe(lr=1e-2, batch_size=2, train_only=("fc2",), fp16=False) if interleave else None
        history = train_local(
            model,
            _toy_set(4),
            _toy_set(2),
            plasticity,
            tmp_path,
            epochs=epochs,
            n_classes=11,
            interleave=recipe,
        )
        return model, history

    _, first = run(1)
    model, history = run(2)  # resumes after epoch 1
    assert [row["epoch"] for row in history] == [1, 2] and repr(history[0]) == repr(first[0])  # NaN-safe
    assert (tmp_path / "history.csv").read_text().count("\n") == 3
    saved = load_checkpoint(tmp_path / "model.pt")
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert (history[0]["train_loss"] == history[0]["train_loss"]) is interleave  # a loss only with BPTT steps


def test_train_local_stops_on_non_finite_weights_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A local rule has no loss to watch: an epoch that leaves a weight NaN stops the run, that epoch is not
    saved, the checkpoint of the epoch before stays (with its RNG state) and no model.pt is written; rerun,
    the run resumes from that checkpoint."""
    import bidl.colearning as colearning
    from bidl.io import load_checkpoint

    epochs_run = []
    local_epoch = colearning.local_epoch

    def diverging(model, *args, **kwargs):  # the second epoch's update turns a head weight into NaN
        top1 = local_epoch(model, *args, **kwargs)
        epochs_run.append(top1)
        if len(epochs_run) == 2:
            with torch.no_grad():
                model.fc2.synapse.weight[0, 0] = float("nan")
        return top1

    def run():
        torch.manual_seed(0)
        model = with_population_head(
            _small_dvs(norm="input", alpha=0.8), head="fc2", n_classes=11, population=3
        )
        plasticity = attach_plasticity(model.fc2, "rstdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
        return colearning.train_local(model, _toy_set(4), None, plasticity, tmp_path, epochs=2, n_classes=11)

    monkeypatch.setattr(colearning, "local_epoch", diverging)
    pattern = r"epoch 2: non-finite values in fc2\.synapse\.weight"
    with pytest.raises(FloatingPointError, match=pattern) as err:
        run()
    assert "the last good checkpoint" in str(err.value) and "(after epoch 1) is kept" in str(err.value)
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["epoch"] == 1 and "rng" in kept and not (tmp_path / "model.pt").exists()
    monkeypatch.setattr(colearning, "local_epoch", local_epoch)
    history = run()
    assert [row["epoch"] for row in history] == [1, 2] and (tmp_path / "model.pt").exists()
    assert not list(tmp_path.glob("checkpoint.stale-*.pt"))  # resumed, not set aside


def test_train_local_killed_and_rerun_ends_with_the_uninterrupted_runs_weights(tmp_path, monkeypatch):
    """Interleaved co-learning with training noise (random numbers drawn in every BPTT step) killed in epoch
    2 and rerun: it resumes after epoch 1 with the saved random state and ends with the weights of a run
    that was never interrupted."""
    import bidl.colearning as colearning
    from bidl.io import load_checkpoint
    from bidl.training import Recipe

    def run(out):
        torch.manual_seed(0)
        network = _small_dvs(norm="input", alpha=0.8, noise=0.3)
        model = with_population_head(network, head="fc2", n_classes=11, population=3)
        plasticity = attach_plasticity(model.fc2, "rstdp", rule_kwargs=dict(lr_plus=1e-2, lr_minus=1e-3))
        recipe = Recipe(lr=1e-2, batch_size=2, train_only=("fc2",), fp16=False)
        colearning.train_local(
            model, _toy_set(4), None, plasticity, out, epochs=3, n_classes=11, interleave=recipe
        )
        return load_checkpoint(out / "model.pt")

    straight = run(tmp_path / "straight")
    real, calls = colearning.interleaved_epoch, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(colearning, "interleaved_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    monkeypatch.setattr(colearning, "interleaved_epoch", real)
    resumed = run(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
