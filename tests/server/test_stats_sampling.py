"""BrokerStats' sampling of request times (docs/monitoring.md, RequestMetrics): every request up to
about SAMPLED_PER_S a second, about that many above, and TotalTimeMs' sum kept by weights that add up
to the requests counted. Driven as the network layer drives it: `skip` counted down per request."""

from __future__ import annotations

from kafkapy.server.stats import SAMPLED_PER_S, BrokerStats, RequestTimer, bare_timer


def run(rate: float, seconds: float) -> tuple[int, int, int]:
    """Requests at `rate` a second for `seconds`: (requests, samples, sum of the samples' weights)."""
    stats = BrokerStats()
    requests = samples = weights = 0
    now = 1000.0
    while now < 1000.0 + seconds:
        requests += 1
        stats.skip -= 1
        if not stats.skip:
            timer = bare_timer(RequestTimer)
            timer.received = now
            stats.sampled(timer)
            samples += 1
            weights += timer.weight
        now += 1 / rate
    return requests, samples, weights


def test_below_the_sampling_rate_every_request_is_timed() -> None:
    requests, samples, weights = run(SAMPLED_PER_S / 2, 5)
    assert samples == requests == weights


def test_above_it_about_the_sampling_rate_is_timed_and_the_weights_add_up() -> None:
    rate, seconds = SAMPLED_PER_S * 20, 6
    requests, samples, weights = run(rate, seconds)
    # the first second (the rate not measured yet) times everything, the rest about SAMPLED_PER_S a second
    assert SAMPLED_PER_S * (seconds - 1) * 0.8 < samples - rate < SAMPLED_PER_S * (seconds - 1) * 1.2
    # each sample stands for the requests since the previous one: only the gap in progress is missing
    assert requests - 2 * rate / SAMPLED_PER_S * 2 <= weights <= requests
