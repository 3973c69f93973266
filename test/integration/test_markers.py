"""viz_node over real DDS: allocations, targets and ground truth in, MarkerArray and the
dashboard image out; the markers are rendered to a PNG in the test's tmp dir."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from admn_ros.core.streams import StreamSet, mask_from_counts
from fixtures.lifecycle import state_label

pytestmark = pytest.mark.ros

COUNTS = [6, 3, 1, 2, 0, 1, 5, 2, 3]              # node2/depth missing
NOISE = [0.2, 0.1, 0.05, 2.5, float("nan"), 0.9, 0.0, 0.3, 0.5]
COV = np.array([[0.04, 0.01], [0.01, 0.02]])


def _curve(k: int) -> tuple[float, float]:
    t = 0.07 * k
    return 1.0 * math.cos(t), 1.3 * math.sin(t)


def test_viz_node_markers_and_dashboard(tmp_path):
    import rclpy
    from geometry_msgs.msg import PointStamped, PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray

    from admn_ros.core.tasks import get_task
    from admn_ros.msg import LayerAllocation
    from admn_ros.ros import topics
    from admn_ros.core.image_convert import image_to_numpy
    from admn_ros.ros.convert import make_header, mask_to_allocation, ns_to_stamp
    from fixtures.markers import render_markers, save_png
    from admn_ros.ros.qos import reliable_qos
    from admn_ros.ros.viz_node import VizNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    viz = VizNode(context=ctx, parameter_overrides=[Parameter("marker_rate", value=20.0),
                                                    Parameter("marker_lifetime", value=0.0)])
    assert state_label(viz) == "active", viz.configure_error
    tn = rclpy.create_node("viz_test", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(viz)
    ex.add_node(tn)
    got: dict[str, list] = {"markers": [], "dash": []}
    tn.create_subscription(MarkerArray, topics.MARKERS, lambda m: got["markers"].append(m), reliable_qos(5))
    tn.create_subscription(Image, topics.DASHBOARD, lambda m: got["dash"].append(m), reliable_qos(5))
    pa = tn.create_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos())
    pt = tn.create_publisher(PoseWithCovarianceStamped, get_task("tracking").output.topic, reliable_qos(100))
    pg = tn.create_publisher(PointStamped, get_task("tracking").truth.topic, reliable_qos(100))

    def spin_until(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            ex.spin_once(timeout_sec=0.01)
        return cond()

    try:
        assert spin_until(lambda: all(p.get_subscription_count() >= 1 for p in (pa, pt, pg)), 10.0)
        ids = StreamSet().ids
        mask = mask_from_counts(COUNTS)
        present = np.array([c > 0 for c in COUNTS])
        t0 = int((time.time() - 5.0) * 1e9)     # frames of the last 5 s (no future stamps)
        n_frames = 60
        for k in range(n_frames):
            stamp = ns_to_stamp(t0 + k * 66_666_667)
            x, y = _curve(k)
            g = PointStamped()
            g.header.stamp, g.header.frame_id = stamp, "map"
            g.point.x, g.point.y = x + 0.05, y - 0.04
            pg.publish(g)
            pa.publish(mask_to_allocation(mask, ids, budget=27, header=make_header(stamp), present=present,
                                          estimated_noise=NOISE, controller="admn_universal", decision_ms=2.0))
            t = PoseWithCovarianceStamped()
            t.header.stamp, t.header.frame_id = stamp, "map"
            get_task("tracking").fill_output(t, {"mean": (x, y), "cov": COV})
            pt.publish(t)
            spin_until(lambda: False, 0.01)

        def trail_len(ma) -> int:
            return max((len(m.points) for m in ma.markers if m.ns == "estimate_trail"), default=0)

        assert spin_until(lambda: got["markers"] and trail_len(got["markers"][-1]) >= n_frames - 5
                          and got["dash"], 10.0), "no complete MarkerArray / dashboard"
        ma = got["markers"][-1]
        by_ns: dict[str, list] = {}
        for m in ma.markers:
            by_ns.setdefault(m.ns, []).append(m)
            assert m.header.frame_id == "map"
        for ns in ("track", "sensor_nodes", "allocation_bars", "allocation_capacity", "allocation_text",
                   "estimate", "estimate_cov", "estimate_trail", "ground_truth", "ground_truth_trail", "status"):
            assert ns in by_ns, f"namespace {ns} missing"
        bars = sorted(by_ns["allocation_bars"], key=lambda m: m.id)
        assert len(bars) == 9
        for b, c in zip(bars, COUNTS):
            assert b.scale.z == pytest.approx(max(c / 12 * 0.6, 0.005), abs=1e-6)
        assert bars[4].color.r == pytest.approx(0.3) and bars[4].color.g == pytest.approx(0.3)  # missing: grey
        assert bars[0].color.g > bars[0].color.r       # clean rgb: green
        assert bars[3].color.r > bars[3].color.g       # noisy node2/rgb (sigma 2.5 of 3): red
        texts = [m.text for m in by_ns["allocation_text"]]
        assert "rgb 6/12 s=0.20" in texts and any("MISSING" in t for t in texts)
        assert "L=27 [admn_universal]" in by_ns["status"][0].text and "err" in by_ns["status"][0].text
        ell = np.array([[p.x, p.y] for p in by_ns["estimate_cov"][0].points])
        est = by_ns["estimate"][0].pose.position
        r = np.linalg.norm(ell - [est.x, est.y], axis=1)
        w = np.linalg.eigvalsh(COV)
        assert r.max() == pytest.approx(2 * math.sqrt(w[1]), rel=0.02)   # 2-sigma ellipse
        assert r.min() == pytest.approx(2 * math.sqrt(w[0]), rel=0.05)

        img = render_markers(ma)
        assert img.shape == (900, 900, 3) and img.dtype == np.uint8
        orange = (img[:, :, 0] > 200) & (img[:, :, 1] > 100) & (img[:, :, 1] < 190) & (img[:, :, 2] < 60)
        green = (img[:, :, 1] > 180) & (img[:, :, 0] < 120) & (img[:, :, 2] < 120)
        red = (img[:, :, 0] > 200) & (img[:, :, 1] < 120) & (img[:, :, 2] < 120)
        assert orange.sum() > 50 and green.sum() > 50 and red.sum() > 20
        png = save_png(img, tmp_path / "markers.png")
        assert png.stat().st_size > 5000
        dash = got["dash"][-1]
        assert dash.encoding == "rgb8" and (dash.height, dash.width) == (480, 640)
        d = image_to_numpy(dash)
        assert d.std() > 10
        save_png(d, tmp_path / "dashboard.png")
    finally:
        ex.shutdown()
        tn.destroy_node()
        viz.destroy_node()
        rclpy.try_shutdown(context=ctx)
