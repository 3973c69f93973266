"""``/diagnostics`` messages of the ADMN nodes (conversion only; bookkeeping: :mod:`admn_ros.ros.telemetry`);
keys and levels: docs/DEPLOY.md, "Operating".
"""
from __future__ import annotations

from typing import Any, Mapping

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"  # nan, inf as such
    return str(v)


def make_status(name: str, hardware_id: str, level: int | bytes, message: str,
                values: Mapping[str, Any] | None = None) -> DiagnosticStatus:
    """A ``DiagnosticStatus`` with ``values`` formatted as strings (floats to 4 digits)."""
    st = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    st.level = level if isinstance(level, bytes) else bytes([int(level)])  # levels are bytes in rclpy
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in (values or {}).items()]
    return st

