"""``/diagnostics`` messages of the ADMN nodes (conversion only; the bookkeeping is
:mod:`admn_ros.ros.telemetry`): a status per input (``<node fqn>: input <key>``) and a summary
status (``<node fqn>: <what>``); keys and levels: docs/DEPLOY.md, "Operating". WARN when an input is
stale, frozen or stalled, or something was dropped/rejected during the last period; ERROR when the
node is not configured.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Hashable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from admn_ros.core.health import UNHEALTHY
from admn_ros.ros.telemetry import LatencyWindow, StreamMonitor

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def make_status(name: str, hardware_id: str, level: int | bytes, message: str,
                values: Mapping[str, Any] | None = None) -> DiagnosticStatus:
    """A ``DiagnosticStatus`` with ``values`` formatted as strings (floats to 4 digits)."""
    st = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    st.level = level if isinstance(level, bytes) else bytes([int(level)])  # levels are bytes in rclpy
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in (values or {}).items()]
    return st


def latency_values(prefix: str, window: LatencyWindow) -> dict[str, float]:
    s = window.summary()
    return {f"{prefix}_ms_p50": s["p50"], f"{prefix}_ms_p99": s["p99"], f"{prefix}_ms_max": s["max"],
            f"{prefix}_count": float(window.count)}


def input_status(node_name: str, key: Hashable, monitor: StreamMonitor, now_s: float, now_ns: int,
                 stale_s: float, extra: Mapping[str, Any] | None = None,
                 prev_rejected: int = 0) -> DiagnosticStatus:
    """Status of one input: rate, age, accepted/rejected counts (by reason) and ``extra`` values."""
    st = monitor.inputs.get(key)
    rate = monitor.rate(key, now_s)
    age = monitor.age(key, now_ns)
    rej: Counter = monitor.rejected(key)
    n_rej = int(sum(rej.values()))
    values: dict[str, Any] = {"rate_hz": rate, "age_s": age, "accepted": st.accepted if st else 0,
                              "rejected": n_rej}
    values.update({f"rejected.{r}": c for r, c in sorted(rej.items())})
    values.update(extra or {})
    if st is None or st.accepted == 0:
        level, msg = WARN, "no data yet"
    elif not math.isnan(age) and age > stale_s:
        level, msg = WARN, f"stale: last stamp {age:.2f} s old"
    else:
        level, msg = OK, f"{rate:.1f} Hz"
    if values.get("health") in UNHEALTHY:
        level, msg = WARN, f"{values['health']}: treated as missing (0 blocks) until it recovers; {msg}"
    if n_rej > prev_rejected:
        level = max(level, WARN)
        msg += f", {n_rej - prev_rejected} rejected ({', '.join(f'{r} {c}' for r, c in rej.most_common(3))})"
    return make_status(f"{node_name}: input {key}", str(key), level, msg, values)


def summary_status(node_name: str, what: str, message: str, values: Mapping[str, Any],
                   dropped: Counter, prev_dropped: int = 0, error: str | None = None) -> DiagnosticStatus:
    """The node's summary status; WARN if frames were dropped since the last report, ERROR on ``error``."""
    v = dict(values)
    v["dropped"] = int(sum(dropped.values()))
    v.update({f"dropped.{r}": c for r, c in sorted(dropped.items())})
    level = OK
    if v["dropped"] > prev_dropped:
        level = WARN
        message += f"; dropped {v['dropped'] - prev_dropped} frame(s) since last report"
    if error:
        level, message = ERROR, error
    return make_status(f"{node_name}: {what}", node_name, level, message, v)


def make_array(stamp: Any, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=Header(stamp=stamp), status=list(statuses))

