"""What counts as divergence (optim.diverged), stated once and tested: a NaN / inf loss, or a loss over
spike_factor x the mean of the previous spike_window losses. Healthy noise and slow drifts do not count."""
from types import SimpleNamespace

from vlmlab.optim import diverged

CFG = SimpleNamespace(spike_factor=10.0, spike_window=20)


def test_nan_and_inf_diverge_at_once():
    assert diverged([1.0, float("nan")], CFG)
    assert diverged([float("inf")], CFG)


def test_a_spike_over_ten_times_the_recent_mean_diverges():
    calm = [2.0] * 20
    assert diverged(calm + [20.1], CFG)
    assert not diverged(calm + [19.9], CFG)


def test_noise_and_drift_do_not_diverge():
    noisy = [1.0 + 0.5 * (i % 3) for i in range(200)]  # swings of +-50%
    assert not any(diverged(noisy[: i + 1], CFG) for i in range(len(noisy)))
    drift = [1.0 * 1.02**i for i in range(200)]  # a 50x rise spread over 200 steps never spikes
    assert not any(diverged(drift[: i + 1], CFG) for i in range(len(drift)))


def test_too_few_losses_for_the_window_and_factor_zero_never_spike():
    assert not diverged([1.0] * 5 + [1e6], CFG)  # fewer than spike_window previous losses
    assert not diverged([1.0] * 30 + [1e6], SimpleNamespace(spike_factor=0.0, spike_window=20))
    assert not diverged([], CFG)
