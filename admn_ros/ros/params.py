"""Typed parameter specs (:class:`ParamSpec`) -> declared ROS 2 parameters with descriptors (for ``ros2 param
describe``), and back. Bad values from YAML or ``-p`` raise :class:`ParameterError` naming the parameter; at
run time :func:`install_validation` rejects them with a reason. An integer for a double is accepted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter


class ParameterError(ValueError):
    """A parameter value given to a node is invalid (message names the parameter)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``default``'s Python type gives the parameter type unless ``type`` is set
    (needed for empty lists); ``min``/``max``: inclusive range of INTEGER / DOUBLE; ``choices``: of a
    STRING; ``constraints``: extra ``additional_constraints`` text; ``validator``: called with the
    value at declaration and on set, a ``ValueError`` it raises says why the value is refused."""

    name: str
    default: Any
    description: str
    type: Parameter.Type | None = None
    min: float | int | None = None
    max: float | int | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    constraints: str = ""
    validator: Callable[[Any], Any] | None = field(default=None, compare=False)

    @property
    def ptype(self) -> Parameter.Type:
        return self.type if self.type is not None else Parameter.Type.from_parameter_value(self.default)

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only)
        d.type = self.ptype.value
        extra = [self.constraints] if self.constraints else []
        lo, hi = self.min, self.max
        if lo is not None or hi is not None:
            if self.ptype == Parameter.Type.INTEGER:
                d.integer_range = [IntegerRange(from_value=int(-(2**63) if lo is None else lo),
                                                to_value=int(2**63 - 1 if hi is None else hi))]
            else:  # DOUBLE
                d.floating_point_range = [FloatingPointRange(from_value=float(-math.inf if lo is None else lo),
                                                             to_value=float(math.inf if hi is None else hi))]
        if self.choices:
            extra.append("one of: " + ", ".join(self.choices))
        d.additional_constraints = "; ".join(extra)
        return d

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is invalid for this spec, or ``None`` if it is fine (an integer for a DOUBLE
        is made a double before: :func:`declare_parameters`, :func:`install_validation`)."""
        pt = self.ptype
        if value is None and pt.name.endswith("ARRAY"):
            value = []  # an empty YAML list arrives untyped (None): it is the empty array
        if not pt.check(value):
            return (f"parameter {self.name!r} must be of type {pt.name}, "
                    f"got {type(value).__name__} {value!r}")
        if pt in (Parameter.Type.INTEGER, Parameter.Type.DOUBLE):
            if pt == Parameter.Type.DOUBLE and not math.isfinite(value):
                return f"parameter {self.name!r} must be finite, got {value}"
            if self.min is not None and value < self.min:
                return f"parameter {self.name!r} = {value} is below its minimum {self.min}"
            if self.max is not None and value > self.max:
                return f"parameter {self.name!r} = {value} is above its maximum {self.max}"
        if self.choices and value not in self.choices:
            return f"parameter {self.name!r} = {value!r} is not one of {list(self.choices)}"
        if self.validator is not None:
            try:
                self.validator(value)
            except ValueError as exc:
                return f"parameter {self.name!r} = {value!r}: {exc}"
        return None


def parameter_overrides(node: Node) -> dict[str, Parameter]:
    """Overrides (``-p``, ``--params-file``, ``parameter_overrides=``) targeted at ``node``: rclpy's own
    dict, in a private attribute (this is the one place we read it)."""
    return getattr(node, "_parameter_overrides", None) or {}


def declare_parameters(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec on ``node`` (overrides applied, an integer for a DOUBLE made a double) and
    return ``{name: value}``; an invalid override raises :class:`ParameterError` naming the parameter."""
    overrides = parameter_overrides(node)   # updated in place
    for s in specs:
        o = overrides.get(s.name)
        if o is not None and s.ptype == Parameter.Type.DOUBLE and o.type_ == Parameter.Type.INTEGER:
            o = overrides[s.name] = Parameter(s.name, Parameter.Type.DOUBLE, float(o.value))
        why = s.check(o.value) if o is not None else None
        if why:
            raise ParameterError(why)
        try:
            if s.type is not None and (s.default is None or s.default == []):
                # rclpy cannot infer a type from [] (it guesses BYTE_ARRAY): declare by type;
                # left unset unless overridden, and read back as the spec default.
                node.declare_parameter(s.name, s.ptype, s.descriptor())
            else:
                node.declare_parameter(s.name, s.default, s.descriptor())
        except (InvalidParameterTypeException, InvalidParameterValueException) as e:
            raise ParameterError(f"parameter {s.name!r}: {e}") from None
    return read_parameters(node, specs)


def read_parameters(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Current values of ``specs`` on ``node`` as plain Python values (lists, not arrays)."""
    out: dict[str, Any] = {}
    for s in specs:
        try:
            v = node.get_parameter(s.name).value
        except ParameterUninitializedException:
            v = s.default
        if isinstance(v, tuple) or type(v).__name__ == "array":
            v = list(v)
        out[s.name] = [] if v is None and s.ptype.name.endswith("ARRAY") else v
    return out


def install_validation(node: Node, specs: Sequence[ParamSpec]) -> None:
    """Register callbacks that turn integers into doubles for DOUBLE specs and reject values failing
    :meth:`ParamSpec.check` with a reason (rclpy enforces ranges and read-only too)."""
    by_name = {s.name: s for s in specs}

    def pre_set(params: list[Parameter]) -> list[Parameter]:
        return [Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
                if p.name in by_name and by_name[p.name].ptype == Parameter.Type.DOUBLE
                and p.type_ == Parameter.Type.INTEGER else p for p in params]

    def on_set(params: list[Parameter]) -> SetParametersResult:
        for p in params:
            s = by_name.get(p.name)
            if s is None or p.type_ == Parameter.Type.NOT_SET:
                continue
            why = s.check(p.value if not type(p.value).__name__ == "array" else list(p.value))
            if why:
                return SetParametersResult(successful=False, reason=why)
        return SetParametersResult(successful=True)

    node.add_pre_set_parameters_callback(pre_set)
    node.add_on_set_parameters_callback(on_set)

