"""Deadline-mode budget choice (admn_ros.core.budget)."""
import pytest

from admn_ros.core.budget import DeadlineBudget


def _feed(db: DeadlineBudget, a: float, b: float, blocks: list[int]) -> None:
    for k in blocks:
        db.update(k, a + b * k)


def test_fits_linear_model_and_picks_largest_budget_in_period():
    db = DeadlineBudget(lo=9, hi=108, target_ms=50.0, margin=0.1, step=200)
    _feed(db, a=5.0, b=0.5, blocks=[20, 40, 60, 80, 30, 50])
    a, b = db.model()
    assert a == pytest.approx(5.0, abs=1e-6) and b == pytest.approx(0.5, abs=1e-6)
    # 45 ms allowed -> (45 - 5) / 0.5 = 80 blocks
    assert db.choose(27) == 80


def test_budget_shrinks_when_cpu_gets_slower_and_recovers():
    db = DeadlineBudget(lo=9, hi=108, target_ms=40.0, margin=0.0, decay=0.8, step=200)
    _feed(db, 2.0, 0.3, [27, 36, 54, 72] * 5)
    fast = db.choose(54)
    _feed(db, 4.0, 0.9, [27, 36, 54, 72] * 10)   # another process takes the CPU: 3x slower
    slow = db.choose(fast)
    assert slow < fast
    assert slow == pytest.approx((40 - 4) / 0.9, abs=1.5)
    _feed(db, 2.0, 0.3, [27, 36, 54, 72] * 10)
    assert db.choose(slow) == fast


def test_step_limits_change_and_bounds_hold():
    db = DeadlineBudget(lo=9, hi=108, target_ms=1000.0, step=6)
    _feed(db, 1.0, 0.1, [10, 20, 30, 40])
    assert db.choose(27) == 33
    db = DeadlineBudget(lo=9, hi=108, target_ms=1.0, step=500)
    _feed(db, 5.0, 1.0, [10, 20, 30, 40])
    assert db.choose(27) == 9


def test_unknown_model_keeps_current_budget():
    db = DeadlineBudget(lo=9, hi=108, target_ms=50.0)
    assert db.choose(27) == 27
    db.update(27, 10.0)
    assert db.model() is None


def test_constant_block_count_scales_through_origin():
    db = DeadlineBudget(lo=9, hi=108, target_ms=60.0, margin=0.0, step=500)
    _feed(db, 0.0, 1.0, [30, 30, 30, 30])
    assert db.choose(30) == 60


@pytest.mark.parametrize("kw", [dict(lo=10, hi=5, target_ms=10), dict(lo=1, hi=5, target_ms=0),
                                dict(lo=1, hi=5, target_ms=10, margin=1.0)])
def test_invalid_settings(kw):
    with pytest.raises(ValueError):
        DeadlineBudget(**kw)
