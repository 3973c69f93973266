"""The base of the ADMN nodes: an rclpy ``LifecycleNode`` with declared parameters, autostart (configure + activate
in the constructor: subclasses do no work after ``super().__init__``), /diagnostics, throttled rejection logs and
the sensor-image checks (docs/DEPLOY.md, "What each node does"); nodes take ``rclpy.node.Node``'s keyword
arguments, so several can share one process (``admn_container``)."""
from __future__ import annotations

import math
import sys
from contextlib import suppress
from dataclasses import fields
from typing import Any, Callable, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, PointCloud2

from admn_ros.core.health import UNHEALTHY, HealthConfig, content_signature
from admn_ros.core.image_convert import ConversionError, decode_stream
from admn_ros.core.streams import MODALITIES, StreamSet, split_stream_id, validate_budget
from admn_ros.core.sync import StreamSync, stamp_to_ns
from admn_ros.core.tasks import Task, get_task
from admn_ros.ros import msg_filters, topics
from admn_ros.ros.convert import image_bridge, make_header
from admn_ros.ros.diagnostics import ERROR, OK, WARN, make_status
from admn_ros.ros.env import run_process
from admn_ros.ros.params import ParamSpec, declare_parameters, install_validation, read_parameters
from admn_ros.ros.qos import image_qos, reliable_qos
from admn_ros.ros.telemetry import StreamMonitor

COMMON_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "Configure and activate at start-up (false: wait for a lifecycle manager)",
              read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages (0 = off)", min=0.0, max=3600.0),
    ParamSpec("stale_s", 1.0, "An input whose last stamp is older than this is reported stale (WARN)",
              min=0.01, max=3600.0),
    ParamSpec("max_future_s", 2.0, "Reject input stamped more than this many seconds ahead of the node clock "
              "(0 = off)", min=0.0, max=86400.0),
    ParamSpec("log_throttle_s", 2.0, "Minimum seconds between two warnings of the same kind about one input",
              min=0.0, max=3600.0),
)

#: Parameters of the health check (applied at once to a running synchronizer).
HEALTH_PARAMS = frozenset(f.name for f in fields(HealthConfig))


def model_specs(task: Task | None = None) -> list[ParamSpec]:
    """Parameters every model-loading node shares (applied on configure); ``task`` gives the
    defaults of ``model_dir`` and ``sensor_nodes``."""
    from admn_ros.core.engine import BACKENDS  # torch: only the model-loading nodes pay for it

    task = get_task(task)
    return [
        ParamSpec("model_dir", "", f"Model and controllers directory ('' = the shipped {task.name} models); "
                  "applied on configure"),
        ParamSpec("backend", "torch", "Inference backend: torch, onnx (built at configure) or auto (times both "
                  "at configure, keeps the faster); applied on configure", choices=BACKENDS),
        ParamSpec("device", "cpu", "torch device (cpu, cuda, auto); applied on configure"),
        ParamSpec("threads", 1, "torch intra-op threads; applied on configure", min=1, max=256),
        ParamSpec("sensor_nodes", list(task.sensor_nodes), "Sensor nodes of the graph (the model's nodes, in "
                  "order); applied on configure"),
    ]


def sync_specs() -> list[ParamSpec]:
    """Parameters of the synchronizing nodes (:mod:`admn_ros.ros.msg_filters`)."""
    return [
        ParamSpec("slop", 0.03, "The stamps of one synchronized frame span less than this (s; message_filters "
                  "slop)", min=1e-6, max=10.0),
        ParamSpec("timeout", 0.5, "An input silent this long (s) is missing: frames go on without it",
                  min=0.01, max=3600.0),
        ParamSpec("queue_size", 10, "Messages kept per input while synchronizing; applied on activate",
                  min=1, max=1000),
        ParamSpec("poll_period", 0.1, "Period (s) of the timer that fires frames whose missing inputs timed out",
                  min=0.001, max=10.0),
    ]


def stream_specs(radar: bool = True) -> list[ParamSpec]:
    """Synchronizer, image, health (:mod:`admn_ros.core.health`) and (``radar``) radar-input parameters
    of the nodes that read the sensor streams."""
    d = HealthConfig()
    return [
        *sync_specs(),
        ParamSpec("qos_depth", 5, "History depth of the image subscriptions", min=1, max=1000),
        ParamSpec("image_reliability", "best_effort", "QoS reliability of the image subscriptions (reliable: "
                  "lost fragments are resent on lossy links); applied on activate",
                  choices=("best_effort", "reliable")),
        ParamSpec("min_image_side", 8, "Smallest accepted image height/width (pixels)", min=1, max=65535),
        ParamSpec("max_image_side", 8192, "Largest accepted image height/width (pixels)", min=1, max=65535),
        ParamSpec("frozen_frames", d.frozen_frames, "A stream whose content repeats this many messages in a row "
                  "is frozen (0 blocks until it recovers); 0 = off", min=0, max=100000),
        ParamSpec("frozen_tolerance", d.frozen_tolerance, "Largest mean absolute change of the content signature "
                  "(every second pixel of the [0, 1] model input) that counts as a repeat", min=0.0, max=1.0),
        ParamSpec("stall_frames", d.stall_frames, "A stream whose stamps do not advance this many messages in a "
                  "row is stalled (0 blocks until it recovers); 0 = off", min=0, max=100000),
        ParamSpec("max_jump_s", d.max_jump_s, "A stamp this much older than the stream's newest, or further ahead "
                  "than the clock advanced, stalls the stream; 0 = off (also the check of stamps far from the "
                  "other streams')", min=0.0, max=86400.0),
        ParamSpec("recover_frames", d.recover_frames, "A frozen or stalled stream rejoins after this many good "
                  "messages in a row", min=0, max=100000),
        *([ParamSpec("radar_input", "image", "Radar input: image (32FC1 range-azimuth map on N/radar/range_azimuth) "
                     "or pointcloud2 (detections on N/radar/points, drawn into the map of sensors_config); "
                     "applied on configure", choices=("image", "pointcloud2")),
           ParamSpec("sensors_config", "", "Sensors YAML whose radar section gives the range-azimuth map ('' = "
                     "shipped config/sensors.yaml); applied on configure")] if radar else []),
    ]


def decode_sensor_image(sid: str, msg: Any, min_side: int = 8, max_side: int = 8192, *,
                        cloud_to_map: Callable[[Any], np.ndarray] | None = None) -> np.ndarray:
    """A sensor message of stream ``sid`` (``sensor_msgs/Image``, or ``PointCloud2`` radar with
    ``cloud_to_map``) -> numpy array for :meth:`Runtime.preprocess`, or a :class:`ConversionError` whose
    ``reason`` is counted on /diagnostics (``bad_encoding``, ``empty``, ``bad_size``, ``bad_layout``,
    ``bad_data``, ``bad_cloud``; radar NaN/inf are ``non_finite`` in :meth:`Runtime.preprocess`)."""
    _, mod = split_stream_id(sid)
    kind = "pointcloud2" if cloud_to_map is not None and mod == "radar" else "image"
    return decode_stream(msg, kind, mod, to_array=image_bridge().imgmsg_to_cv2, cloud_to_map=cloud_to_map,
                         side_range=(min_side, max_side))


class AdmnNode(LifecycleNode):
    """Base class of the ADMN nodes (see the module docstring)."""

    NODE_NAME = "admn_node"
    #: name of the summary status on /diagnostics
    SUMMARY = "pipeline"

    def __init__(self, node_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(node_name or self.NODE_NAME, **kwargs)
        self._subs: list[Any] = []
        #: topic -> the message_filters Subscriber of each synchronized input (while active)
        self.input_filters: dict[str, Any] = {}
        self._timers: list[Any] = []
        self._lc_pubs: list[Any] = []
        self._child_loggers: dict[tuple[str, str], Any] = {}
        self.configure_error: str | None = None
        self.cloud_to_map: Any = None          # PointCloud2 radar -> range-azimuth map (radar_input)
        self.diag_pub = None
        self.runtime: Any = None                # the loaded models (configure)
        self.sync: StreamSync | None = None     # the synchronizer of the inputs (activate)
        try:
            self.specs: tuple[ParamSpec, ...] = COMMON_SPECS + tuple(self.param_specs())
            self.p: dict[str, Any] = declare_parameters(self, self.specs)
            install_validation(self, self.specs)
            self.add_post_set_parameters_callback(self._after_set)
        except BaseException:
            self.destroy_node()
            raise
        if self.p["autostart"]:  # configure + activate; configure_error says why either failed
            for trigger, what in ((self.trigger_configure, "configure"), (self.trigger_activate, "activate")):
                if trigger() != TransitionCallbackReturn.SUCCESS:
                    self.configure_error = self.configure_error or f"{what} transition failed"
                    break

    #: A budget parameter value meaning "derive it from the model" (None = no such value).
    AUTO_BUDGET: int | None = None

    def _n_streams(self) -> int:
        """Streams the budget counts: the loaded runtime's, else ``sensor_nodes`` x modalities."""
        rt = self.runtime
        if rt is not None:
            return len(rt.stream_ids)
        return max(1, len(self.get_parameter("sensor_nodes").value or ())) * len(MODALITIES)

    def _check_budget(self, value: Any) -> None:
        if self.AUTO_BUDGET is None or int(value) != self.AUTO_BUDGET:
            validate_budget(int(value), self._n_streams())

    def load_runtime(self, task: Task | None = None, streams: bool = True) -> Any:
        """``self.runtime``: the models of ``model_dir`` (default: ``task``'s shipped ones) loaded with
        the model parameters; with ``streams`` for the streams of ``sensor_nodes``."""
        from admn_ros.core.runtime import Runtime

        p = self.p
        ss = StreamSet(tuple(p["sensor_nodes"])) if streams else None
        self.runtime = Runtime.load(p["model_dir"] or str(get_task(task).models_dir()), p["backend"], p["device"],
                                    threads=p["threads"], streams=ss)
        return self.runtime

    def param_specs(self) -> Sequence[ParamSpec]:
        return ()

    def configure(self) -> None:
        """Load models, create publishers (:meth:`lifecycle_publisher`). Raise to fail."""

    def activate(self) -> None:
        """Create subscriptions (:meth:`subscribe`) and timers (:meth:`timer`)."""

    def deactivate(self) -> None:
        """Extra work when deactivating (subscriptions/timers are destroyed by the base)."""

    def cleanup(self) -> None:
        """Drop what :meth:`configure` made (publishers are destroyed by the base)."""
        self.runtime = None
        self.sync = None

    def on_parameter(self, name: str, value: Any) -> None:
        """A parameter was changed at run time (already validated and stored in ``self.p``)."""

    def diagnostic_statuses(self) -> list[DiagnosticStatus]:
        return []

    def subscribe(self, msg_type: Any, topic: str, callback: Callable, qos: Any) -> Any:
        s = self.create_subscription(msg_type, topic, callback, qos)
        self._subs.append(s)
        return s

    def subscribe_filter(self, msg_type: Any, topic: str, qos: Any) -> Any:
        """A ``message_filters`` ``Subscriber`` on ``topic``, destroyed with the others on deactivate."""
        f = msg_filters.Subscriber(self, msg_type, topic, qos_profile=qos)
        self._subs.append(f.sub)
        self.input_filters[topic] = f
        return f

    def subscribe_streams(self, ids: Sequence[str], on_set: Callable[[Any], None],
                          poll: Callable[[], None] | None = None) -> None:
        """Synchronize the sensor streams ``ids`` (a subscription each, the ``poll`` timer, default
        :meth:`sync_poll`); ``on_set`` gets every synchronized set."""
        self.sync = self.make_sync(ids)
        q = image_qos(self.p["image_reliability"], self.p["qos_depth"])
        for sid in ids:
            self.subscribe_filter(*self.stream_input(sid), q).registerCallback(self._on_stream, sid, on_set)
        self.timer(float(self.p["poll_period"]), poll or (lambda: self.sync_poll(on_set)))

    def budget_from_topic(self, msg: Any) -> None:
        """``std_msgs/UInt16`` on ``admn/budget``: sets the ``budget`` parameter (rejected with the reason)."""
        v = int(msg.data)
        res = self.set_parameters([Parameter("budget", Parameter.Type.INTEGER, v)])[0]
        if not res.successful:
            self.reject(topics.BUDGET, "bad_budget", f"budget {v} from {topics.BUDGET} rejected: {res.reason}")

    def make_sync(self, keys: Sequence[Any]) -> StreamSync:
        """The synchronizer over ``keys``, with the health check when the node has its parameters (``stream_specs``)."""
        self._stale_reported = 0
        return StreamSync(keys, float(self.p["slop"]), int(self.p["queue_size"]), float(self.p["timeout"]),
                          synchronizer=msg_filters.ApproximateTimeSynchronizer, health=self._health_config())

    def _health_config(self) -> HealthConfig | None:
        return HealthConfig.from_params(self.p) if "frozen_frames" in self.p else None

    def stream_statuses(self, ids: Sequence[str], alloc: Any = None,
                        extra: Callable[[str], dict[str, Any]] | None = None) -> list[DiagnosticStatus]:
        """/diagnostics status of each stream of ``ids``: ``extra(sid)``, its ``health`` (``ok``, ``missing``,
        ``frozen``, ``stalled``) and ``health.<status>`` (times it turned so) and, with ``alloc`` (``est_noise``,
        ``mask``, ``present`` in the order of ``ids``), its estimated noise, blocks, presence."""
        sync = self.sync
        status = sync.status(self.now_s()) if sync is not None else {}
        out = []
        for i, sid in enumerate(ids):
            v = extra(sid) if extra is not None else {}
            if sync is not None:
                h = sync.health.get(sid)
                v = {**v, "health": status[sid], **({f"health.{s}": h.events[s] for s in sorted(UNHEALTHY)}
                                                    if h is not None else {})}
            if alloc is not None:
                v.update({"est_sigma": float(alloc.est_noise[i]), "blocks": int(alloc.mask[i].sum()),
                          "present": bool(alloc.present[i])})
            out.append(self.input_status(sid, v))
        return out

    def stream_input(self, sid: str) -> tuple[Any, str]:
        """Message type and topic of stream ``sid``'s input (``radar_input: pointcloud2``: radar on N/radar/points)."""
        node, mod = split_stream_id(sid)
        if self.cloud_to_map is not None and mod == "radar":
            return PointCloud2, topics.radar_points_topic(node)
        return Image, topics.image_topic(sid)

    def timer(self, period_s: float, callback: Callable) -> Any:
        t = self.create_timer(period_s, callback)
        self._timers.append(t)
        return t

    def lifecycle_publisher(self, msg_type: Any, topic: str, qos: Any) -> Any:
        p = self.create_lifecycle_publisher(msg_type, topic, qos)
        self._lc_pubs.append(p)
        return p

    def now_ns(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def now_s(self) -> float:
        return self.now_ns() * 1e-9

    def reject(self, key: Any, reason: str, detail: str) -> None:
        """Count a rejected message on /diagnostics and warn (throttled per input and reason)."""
        self.monitor.reject(key, reason)
        n = self.monitor.rejected(key)[reason]
        self.warn_throttled(reason, f"{key}: message rejected ({reason}, {n} so far): {detail}", key)

    def warn_throttled(self, kind: str, text: str, key: Any = "") -> None:
        """Warn at most once per ``log_throttle_s`` per ``kind`` and input ``key``."""
        lg = self._child_loggers.get((str(key), kind))
        if lg is None:
            lg = self._child_loggers[(str(key), kind)] = self.get_logger().get_child(kind)
        lg.warning(text, throttle_duration_sec=float(self.p["log_throttle_s"]) or 1e-9)

    def _on_stream(self, msg: Any, sid: str, on_set: Callable[[Any], None]) -> None:
        """A sensor message -> its model input, offered to the synchronizer (a rejection names the topic)."""
        msg_type, topic = self.stream_input(sid)
        f = self.input_filters.get(topic)  # its resolved name: namespace, remapping
        where = f"topic {f.sub.topic_name if f else topic}"
        ns = self.check_stamp(sid, msg.header.stamp, order=False, where=where)
        if ns is None:
            return
        try:
            arr = decode_sensor_image(sid, msg, self.p["min_image_side"], self.p["max_image_side"],
                                      cloud_to_map=self.cloud_to_map)
            x = self.runtime.preprocess(sid, arr)
        except ConversionError as exc:
            self.reject(sid, exc.reason, f"{where}: {exc}")
            return
        except ValueError as exc:
            self.reject(sid, "bad_values", f"{where}: {exc}")
            return
        self.monitor.accept(sid, ns, self.now_s())
        self.sync_offer(sid, msg.header.stamp, x, on_set, repeats=msg_type is Image)

    def sync_offer(self, key: Any, stamp: Time, payload: Any, on_set: Callable[[Any], None],
                   repeats: bool = True) -> None:
        """Offer ``payload`` to ``self.sync``; ``on_set`` gets every set it fires (its stamp: the newest). ``repeats``:
        whether repeated content means a frozen input (not for radar detections: a static scene repeats them)."""
        if self.sync is not None:
            sig = content_signature(payload) if self.sync.health and repeats else None
            self._on_sets(self.sync.add(key, stamp, payload, self.now_s(), sig), on_set)

    def sync_poll(self, on_set: Callable[[Any], None]) -> None:
        """Timer callback body: fire sets whose missing inputs timed out."""
        if self.sync is not None:
            self._on_sets(self.sync.poll(self.now_s()), on_set)

    def _on_sets(self, sets: list, on_set: Callable[[Any], None]) -> None:
        stale = self.sync.stats.stale_sets - self._stale_reported
        if stale > 0:
            self.monitor.drop("stale_set", stale)
            self._stale_reported += stale
        for fs in sets:
            on_set(fs)

    def check_stamp(self, key: Any, stamp: Time, order: bool = True, where: str = "") -> int | None:
        """Stamp in ns, or None after rejecting a zero or future stamp, and with ``order`` a duplicate or
        out-of-order one (synchronized inputs pass False: a reordered message can complete an older frame);
        ``where`` (e.g. the topic) leads the warning."""
        ns = stamp_to_ns(stamp)
        why = self.monitor.check_stamp(key, ns) if order else ("zero_stamp" if ns <= 0 else None)
        detail = f"{where}: stamp {ns * 1e-9:.6f} s" if where else f"stamp {ns * 1e-9:.6f} s"
        future = float(self.p["max_future_s"])
        if why is None and future > 0:
            now = self.now_ns()
            if now > 0 and ns > now + int(future * 1e9):
                why = "future_stamp"
                detail += f" is {(ns - now) * 1e-9:.3f} s ahead of the node clock (max_future_s {future:g})"
        if why is not None:
            self.reject(key, why, detail)
            return None
        return ns

    def _after_set(self, params: list[Parameter]) -> None:
        self.p = read_parameters(self, self.specs)
        for prm in params:
            if prm.name in self.p:
                try:
                    if prm.name in ("slop", "timeout") and self.sync is not None:
                        self.sync.configure(**{prm.name: float(prm.value)})
                    if self.sync is not None and prm.name in HEALTH_PARAMS:
                        self.sync.configure(health=self._health_config())
                    self.on_parameter(prm.name, self.p[prm.name])
                except Exception as exc:  # noqa: BLE001 - never let a callback kill the node
                    self.get_logger().error(f"applying parameter {prm.name}={prm.value!r} failed: {exc}")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        try:
            self.monitor = StreamMonitor()
            self._prev_rejected, self._prev_dropped, self._prev_sync = {}, 0, (0, 0)
            if self.p.get("radar_input") == "pointcloud2":  # radar as PointCloud2: drawn into the map
                from admn_ros.core.radar_cloud import CloudToRangeAzimuth
                from admn_ros.core.sim.config import load_sim_config

                self.cloud_to_map = CloudToRangeAzimuth(load_sim_config(self.p.get("sensors_config") or None).radar)
            self.configure()
            self.diag_pub = self.lifecycle_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos())
        except Exception as exc:  # noqa: BLE001 - report, never leave a half-configured node
            ck = sys.modules.get("admn_ros.core.checkpoint")  # a CheckpointError means it was imported
            if isinstance(exc, (ValueError, KeyError, OSError)) or (
                    ck is not None and isinstance(exc, ck.CheckpointError)):
                self.configure_error = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            else:
                self.configure_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self._release_all()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.activate()
            period = float(self.p["diagnostics_period"])
            if period > 0:
                self.timer(period, self.publish_diagnostics)
        except Exception as exc:  # noqa: BLE001
            self.configure_error = f"activate failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(self.configure_error)
            self._destroy_subs_timers()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_subs_timers()
        self.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Also the shutdown and error transitions: release everything (the lifecycle publishers, rclpy's
        managed entities, included)."""
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    on_shutdown = on_error = on_cleanup

    def _destroy_subs_timers(self) -> None:
        for s in self._subs:
            self.destroy_subscription(s)
        for t in self._timers:
            self.destroy_timer(t)
        self._subs, self._timers, self.input_filters = [], [], {}

    def _release_all(self) -> None:
        self._destroy_subs_timers()
        self.cloud_to_map = None
        for p in self._lc_pubs:
            with suppress(Exception):  # already gone
                self.destroy_lifecycle_publisher(p)
        self._lc_pubs = []
        self.diag_pub = None
        try:
            self.cleanup()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"cleanup failed: {exc}")

    def input_status(self, key: Any, extra: dict[str, Any] | None = None,
                     stale_s: float | None = None) -> DiagnosticStatus:
        """/diagnostics status ``<fqn>: input <key>``: rate, age, accepted/rejected counts (by reason) and
        ``extra``; WARN without data, when the last stamp is older than ``stale_s`` (default the parameter),
        when ``extra``'s health is frozen/stalled, or when messages were rejected since the last report."""
        mon, now_ns = self.monitor, self.now_ns()
        st = mon.inputs[key]
        rate, age, rej = st.rate.rate(now_ns * 1e-9), mon.age(key, now_ns), mon.rejected(key)
        n_rej, prev = int(sum(rej.values())), self._prev_rejected.get(key, 0)
        values: dict[str, Any] = {"rate_hz": rate, "age_s": age, "accepted": st.accepted,
                                  "rejected": n_rej, **{f"rejected.{r}": c for r, c in sorted(rej.items())},
                                  **(extra or {})}
        if st.accepted == 0:
            level, msg = WARN, "no data yet"
        elif not math.isnan(age) and age > (self.p["stale_s"] if stale_s is None else stale_s):
            level, msg = WARN, f"stale: last stamp {age:.2f} s old"
        else:
            level, msg = OK, f"{rate:.1f} Hz"
        if values.get("health") in UNHEALTHY:
            level, msg = WARN, f"{values['health']}: treated as missing (0 blocks) until it recovers; {msg}"
        if n_rej > prev:
            level = max(level, WARN)
            msg += f", {n_rej - prev} rejected ({', '.join(f'{r} {c}' for r, c in rej.most_common(3))})"
        return make_status(f"{self.get_fully_qualified_name()}: input {key}", str(key), level, msg, values)

    def summary_status(self, message: str, values: dict[str, Any]) -> DiagnosticStatus:
        """The node's summary status ``<fqn>: SUMMARY`` with ``values``, the ``sync_*`` counts of ``self.sync``
        and the drop counts: WARN if frames were dropped since the last report, or if every input sends but
        none of their messages formed a set (stamps further apart than ``slop``); ERROR (its message) on
        ``configure_error``."""
        dropped, st = self.monitor.dropped, self.sync.stats if self.sync is not None else None
        if st is not None:
            values = {**values, "sync_sets": st.sets, "sync_stale_sets": st.stale_sets, "sync_discarded": st.discarded,
                      "sync_queued": st.queued, "sync_rebuilds": st.rebuilds, "sync_impl": msg_filters.IMPLEMENTATION}
        v = {**values, "dropped": int(sum(dropped.values())), **{f"dropped.{r}": c for r, c in sorted(dropped.items())}}
        level = OK
        if v["dropped"] > self._prev_dropped:
            level = WARN
            message += f"; dropped {v['dropped'] - self._prev_dropped} frame(s) since last report"
        sets0, discarded0 = self._prev_sync
        all_live = st is not None and self.sync.live == tuple(self.sync.keys)
        if all_live and st.sets == sets0 and st.discarded > discarded0:
            level = WARN
            message += (f"; every input sends but no frame formed since last report: their stamps lie more than "
                        f"slop ({self.sync.slop:g} s) apart (docs/DEPLOY.md, Clocks)")
        if self.configure_error:
            level, message = ERROR, self.configure_error
        name = self.get_fully_qualified_name()
        return make_status(f"{name}: {self.SUMMARY}", name, level, message, v)

    def publish_diagnostics(self) -> None:
        if self.diag_pub is None:
            return
        try:
            statuses = self.diagnostic_statuses()
        except Exception as exc:  # noqa: BLE001 - diagnostics must never kill the node
            self.warn_throttled("diagnostics", f"building diagnostics failed: {exc}")
            return
        self.diag_pub.publish(DiagnosticArray(header=make_header(self.get_clock().now().to_msg()), status=statuses))
        self._prev_rejected = {k: int(sum(self.monitor.rejected(k).values())) for k in self.monitor.inputs}
        self._prev_dropped = int(sum(self.monitor.dropped.values()))
        self._prev_sync = (self.sync.stats.sets, self.sync.stats.discarded) if self.sync is not None else (0, 0)

    @classmethod
    def main(cls, args: Sequence[str] | None = None) -> int:
        """The node's executable: exit code 2 (the problem on stderr) if a parameter is invalid or
        autostart failed (e.g. the model directory or a checkpoint is wrong)."""
        return run_process(cls, cls.NODE_NAME, (ValueError,), None if args is None else list(args))
