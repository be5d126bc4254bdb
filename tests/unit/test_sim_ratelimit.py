"""Sliding-window limiter: per-key windows, several windows at once, refusals not counted."""

from __future__ import annotations

import pytest

from tickstream.sim.ratelimit import SlidingWindowLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_fourth_request_in_a_second_refused() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([(3, 1.0)], clock=clock)
    # Act
    got = [limiter.try_acquire("k") for _ in range(4)]
    # Assert
    assert got == [True, True, True, False]


def test_limiter_window_slides_after_oldest_request_ages_out() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([(3, 1.0)], clock=clock)
    for step in (0.0, 0.4, 0.8):
        clock.now = 1000.0 + step
        assert limiter.try_acquire("k")
    # Act / Assert: at +0.9 three requests are inside the last second; at +1.0 the first left it
    clock.now = 1000.9
    assert not limiter.try_acquire("k")
    clock.now = 1001.0
    assert limiter.try_acquire("k")
    assert not limiter.try_acquire("k")


def test_limiter_keys_are_independent() -> None:
    limiter = SlidingWindowLimiter([(1, 1.0)], clock=FakeClock())
    assert limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    assert not limiter.try_acquire("a")


def test_limiter_longer_window_blocks_even_below_per_second_rate() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([(3, 1.0), (6, 10.0)], clock=clock)
    admitted = []
    for k in range(6):
        clock.now = 1000.0 + k * 0.5  # 2 a second: the per-second window never fills
        admitted.append(limiter.try_acquire("k"))
    # Act
    clock.now = 1003.0
    blocked = limiter.try_acquire("k")
    clock.now = 1010.0
    after_first_ages_out = limiter.try_acquire("k")
    # Assert
    assert admitted == [True] * 6
    assert blocked is False
    assert after_first_ages_out is True


def test_limiter_refused_requests_are_not_counted() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter([(1, 1.0)], clock=clock)
    assert limiter.try_acquire("k")
    clock.now += 0.5
    assert not limiter.try_acquire("k")
    clock.now += 0.5
    assert limiter.try_acquire("k")


@pytest.mark.parametrize("windows", [[], [(0, 1.0)], [(3, 0.0)]])
def test_limiter_bad_windows_raise_value_error(windows: list[tuple[int, float]]) -> None:
    with pytest.raises(ValueError, match="windows"):
        SlidingWindowLimiter(windows)
