"""ADMN visualization node: RViz markers and a dashboard image of the tracking graph's allocations, estimates and
truth; topics, marker namespaces and the track: docs/DEPLOY.md, "What each node does"."""
from __future__ import annotations

import math
import sys
from collections import deque
from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from admn_ros.core.streams import DEFAULT_NODES, StreamSet
from admn_ros.core.tasks import get_task
from admn_ros.core.viz import MarkerSpec, VizState, render_dashboard, scene_markers
from admn_ros.msg import LayerAllocation
from admn_ros.ros import topics
from admn_ros.ros.convert import allocation_to_mask, make_header, message_class, numpy_to_image
from admn_ros.ros.lifecycle import AdmnNode
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos

#: The task whose estimates and truths this node draws on the map (2-D positions with a covariance).
MAP_TASK = get_task("tracking")
TARGET, GROUND_TRUTH = MAP_TASK.output.topic, MAP_TASK.truth.topic


def marker_array(specs: Sequence[MarkerSpec], frame_id: str, stamp: Time | None = None,
                 lifetime_s: float = 0.0) -> MarkerArray:
    """``visualization_msgs/MarkerArray`` of :class:`~admn_ros.core.viz.MarkerSpec` s (ADD,
    identity orientation; ``lifetime_s`` on all but the persistent ones)."""
    out = MarkerArray()
    header = make_header(stamp or Time(), frame_id)
    for sp in specs:
        m = Marker(header=header, ns=sp.ns, id=int(sp.id), type=getattr(Marker, sp.kind), action=Marker.ADD)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = map(float, sp.position)
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = map(float, sp.scale)
        m.color = ColorRGBA(r=float(sp.rgba[0]), g=float(sp.rgba[1]), b=float(sp.rgba[2]), a=float(sp.rgba[3]))
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in sp.points]
        m.text = sp.text
        if lifetime_s > 0 and not sp.persistent:
            m.lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s - int(lifetime_s)) * 1e9))
        out.markers.append(m)
    return out


def view_specs(marker_lifetime: float) -> list[ParamSpec]:
    """The markers' frame and lifetime and the rate and size of the ``admn/dashboard`` image."""
    return [
        ParamSpec("frame_id", "map", "Fixed frame of the markers and the dashboard"),
        ParamSpec("marker_lifetime", marker_lifetime, "Lifetime (s) of the dynamic markers (0 = forever)",
                  min=0.0, max=3600.0),
        ParamSpec("dashboard_rate", 5.0, "Dashboard image rate (Hz) on admn/dashboard; 0 = off", min=0.0, max=60.0),
        ParamSpec("dashboard_width", 640, "Dashboard width (pixels)", min=160, max=4096),
        ParamSpec("dashboard_height", 480, "Dashboard height (pixels)", min=120, max=4096),
    ]


class VizNode(AdmnNode):
    NODE_NAME = "viz_node"
    SUMMARY = "viz"

    def param_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("sensor_nodes", list(DEFAULT_NODES), "Sensor nodes to draw; applied on configure"),
            ParamSpec("sensors_config", "", "Simulator/sensor config YAML with node poses and the track "
                      "('' = shipped config/sensors.yaml); applied on configure"),
            ParamSpec("trail_length", 150, "Estimates kept in the trail", min=0, max=100000),
            ParamSpec("marker_rate", 10.0, "MarkerArray publish rate (Hz)", min=0.1, max=100.0),
            ParamSpec("bar_height", 0.6, "Bar height (m) of a full backbone (all blocks)", min=0.05, max=10.0),
            *view_specs(marker_lifetime=1.0),
        ]

    def configure(self) -> None:
        from admn_ros.core.sim import load_sim_config

        p = self.p
        cfg = load_sim_config(p["sensors_config"] or None)
        known = cfg.node_xy()
        unknown = [n for n in p["sensor_nodes"] if n not in known]
        if unknown:
            raise ValueError(f"{cfg.source or 'sensor config'}: sensor_nodes {unknown} have no pose "
                             f"(nodes in the config: {list(known)})")
        StreamSet(tuple(p["sensor_nodes"]))
        self.state = VizState(cfg.track.bounds, {n: known[n] for n in p["sensor_nodes"]})
        self.on_parameter("trail_length", p["trail_length"])
        self._gt: dict[int, tuple[float, float]] = {}
        self._last_target: tuple[int, float, float] | None = None
        self.errors: deque[float] = deque(maxlen=300)
        self.stamp = Time()
        self.markers_published = 0
        self.dashboards_published = 0
        self.marker_pub = self.lifecycle_publisher(MarkerArray, topics.MARKERS, reliable_qos(2))
        self.dash_pub = self.lifecycle_publisher(Image, topics.DASHBOARD, reliable_qos(2))

    def activate(self) -> None:
        self.subscribe(LayerAllocation, topics.ALLOCATION, self._on_allocation, reliable_qos())
        self.subscribe(message_class(MAP_TASK.output.type), TARGET, self._on_target, reliable_qos())
        self.subscribe(message_class(MAP_TASK.truth.type), GROUND_TRUTH, self._on_gt, reliable_qos())
        self.timer(1.0 / float(self.p["marker_rate"]), self.publish_markers)
        if float(self.p["dashboard_rate"]) > 0:
            self.timer(1.0 / float(self.p["dashboard_rate"]), self.publish_dashboard)

    def cleanup(self) -> None:
        self.state = None

    def on_parameter(self, name: str, value: Any) -> None:
        if name == "trail_length" and getattr(self, "state", None) is not None:
            self.state.trail = deque(self.state.trail, maxlen=max(1, int(value)))
            self.state.gt_trail = deque(self.state.gt_trail, maxlen=max(1, int(value)))

    def _on_allocation(self, msg: LayerAllocation) -> None:
        ns = self.check_stamp(topics.ALLOCATION, msg.header.stamp)
        if ns is None:
            return
        try:
            a = allocation_to_mask(msg)
            StreamSet.from_ids(a.stream_ids)
        except ValueError as exc:
            self.reject(topics.ALLOCATION, "bad_allocation", str(exc))
            return
        self.monitor.accept(topics.ALLOCATION, ns, self.now_s())
        self.state.allocation = a

    def _on_target(self, msg: Any) -> None:
        ns = self.check_stamp(TARGET, msg.header.stamp)
        if ns is None:
            return
        est = MAP_TASK.read_output(msg)
        (x, y), c = est["mean"], est["cov"]
        if not (math.isfinite(x) and math.isfinite(y) and np.isfinite(c).all()):
            self.reject(TARGET, "non_finite", "target position/covariance not finite")
            return
        self.monitor.accept(TARGET, ns, self.now_s())
        st = self.state
        st.estimate, st.cov = (x, y), c
        st.trail.append((x, y))
        self.stamp = msg.header.stamp
        self._last_target = (ns, x, y)
        gt = self._gt.get(ns)
        if gt is not None:
            self._error(x, y, gt)

    def _error(self, x: float, y: float, gt: tuple[float, float]) -> None:
        self.state.error_m = float(math.hypot(x - gt[0], y - gt[1]))
        self.errors.append(self.state.error_m)

    def _on_gt(self, msg: Any) -> None:
        ns = self.check_stamp(GROUND_TRUTH, msg.header.stamp)
        if ns is None:
            return
        self.monitor.accept(GROUND_TRUTH, ns, self.now_s())
        xy = tuple(float(v) for v in MAP_TASK.read_truth(msg))
        self._gt[ns] = xy
        while len(self._gt) > 600:
            del self._gt[next(iter(self._gt))]
        self.state.ground_truth = xy
        self.state.gt_trail.append(xy)
        lt = self._last_target
        if lt is not None and lt[0] == ns:     # the target of this stamp came first
            self._error(lt[1], lt[2], xy)

    def markers(self) -> MarkerArray:
        return marker_array(scene_markers(self.state, float(self.p["bar_height"])), str(self.p["frame_id"]),
                            self.stamp, float(self.p["marker_lifetime"]))

    def publish_markers(self) -> None:
        self.marker_pub.publish(self.markers())
        self.markers_published += 1

    def publish_dashboard(self) -> None:
        img = render_dashboard(self.state, int(self.p["dashboard_width"]), int(self.p["dashboard_height"]))
        self.dash_pub.publish(numpy_to_image(img, "rgb8", make_header(self.stamp, str(self.p["frame_id"]))))
        self.dashboards_published += 1

    def diagnostic_statuses(self):
        out = [self.input_status(k, {}) for k in (topics.ALLOCATION, TARGET, GROUND_TRUTH)]
        errs = list(self.errors)
        values = {"markers_published": self.markers_published, "dashboards_published": self.dashboards_published,
                  "error_cm_mean": 100 * float(np.mean(errs)) if errs else float("nan")}
        msg = f"error {values['error_cm_mean']:.1f} cm over {len(errs)} frames" if errs else "no error yet"
        return out + [self.summary_status(msg, values)]


main = VizNode.main  # python -m admn_ros.ros.viz_node


if __name__ == "__main__":
    sys.exit(main())
