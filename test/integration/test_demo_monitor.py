"""The demo monitor hands the scenario to the sensor node over its parameter services: the
parameters go out once those services are matched and again while unanswered (DDS drops a
request or a response sent before both sides of a service have matched), and a node that never
answers or refuses ends the demo with the reason."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import rclpy

from admn_ros.core.paths import config_path
from admn_ros.core.sim.timeline import Timeline
from admn_ros.core.streams import StreamSet
from admn_ros.core.tasks import get_task
from admn_ros.ros import demo

pytestmark = [pytest.mark.ros]


class _Future:
    def __init__(self, reasons: list[str] | None = None) -> None:
        self.reasons = reasons   # None: never answered

    def done(self) -> bool:
        return self.reasons is not None

    def result(self):
        return SimpleNamespace(results=[SimpleNamespace(successful=not r, reason=r) for r in self.reasons])


class _Params:
    """Stands in for rclpy's AsyncParameterClient of the sensor node."""

    def __init__(self, futures: list[_Future]) -> None:
        self.ready, self.futures, self.calls = False, futures, []

    def services_are_ready(self) -> bool:
        return self.ready

    def set_parameters(self, params):
        self.calls.append({p.name: p.value for p in params})
        return self.futures.pop(0) if len(self.futures) > 1 else self.futures[0]


@pytest.fixture
def monitor():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("demo_monitor_test", context=ctx)
    ids = StreamSet().ids
    mon = demo.Monitor(node, ids, get_task("tracking"), Timeline.load(config_path("demo_tracking.yaml"), ids))
    try:
        yield mon
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_scenario_parameters_are_sent_when_matched_and_again_while_unanswered(monitor, monkeypatch):
    """Break tried: sending the parameters once only (no resend): the lost first request left the
    scenario unapplied, two calls were expected and one was made."""
    monkeypatch.setattr(demo, "RESEND_S", 0.2)
    fake = monitor.params = _Params([_Future(), _Future([""])])   # the first request is lost
    monitor._start(0)
    assert monitor.check_scenario() is None and fake.calls == []    # services not matched yet
    fake.ready = True
    assert monitor.check_scenario() is None and len(fake.calls) == 1
    assert monitor.check_scenario() is None and len(fake.calls) == 1    # answered within RESEND_S?
    time.sleep(0.25)
    assert monitor.check_scenario() is None and len(fake.calls) == 2
    assert monitor.check_scenario() is None and len(fake.calls) == 2    # answered: accepted
    assert fake.calls[0] == fake.calls[1] and fake.calls[0]["timeline_start"] == monitor._start_s
    assert fake.calls[0]["timeline_file"].endswith("demo_tracking.yaml")


def test_a_sensor_node_that_never_answers_ends_the_demo(monitor, monkeypatch):
    """Break tried: without the give-up branch the demo ran on with no scenario applied
    (check_scenario stayed None)."""
    monkeypatch.setattr(demo, "GIVE_UP_S", 0.3)
    fake = monitor.params = _Params([_Future()])
    fake.ready = True
    monitor._start(0)
    assert monitor.check_scenario() is None
    time.sleep(demo.START_DELAY_S + 0.35)   # counted from the scenario's start
    assert "no answer to the scenario's parameters within 0.3 s" in monitor.check_scenario()


def test_a_refused_scenario_ends_the_demo_with_the_reason(monitor):
    fake = monitor.params = _Params([_Future(["parameter 'timeline_file': unknown stream"])])
    fake.ready = True
    monitor._start(0)
    assert monitor.check_scenario() == "parameter 'timeline_file': unknown stream"
