"""The one place where images are converted, duck-typed on the message fields (nothing here imports
ROS): :func:`image_to_numpy` / :func:`image_message_fields` are cv_bridge's ``imgmsg_to_cv2`` /
``cv2_to_imgmsg``; :func:`decode_stream` gives a stream's rgb ``uint8 (H, W, 3)``, depth ``uint16`` mm
(0 = invalid, REP-118) or radar ``float32`` (formats: :data:`STREAM_FORMATS`), writable and owning
its memory. Anything else raises :class:`ConversionError`.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np


class ConversionError(ValueError):
    """A message that cannot be converted. ``reason``: ``bad_encoding`` (unknown encoding,
    or one the stream cannot use), ``empty``, ``bad_size`` (a side outside the accepted range),
    ``bad_layout`` (step / data size inconsistent), ``bad_data`` (undecodable payload) or ``bad_cloud``
    (PointCloud2 fields / layout)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class EncodingInfo:
    """``colour``: the layout of a colour encoding (``gray``, ``rgb``, ...), ``None`` for generic
    OpenCV types, ``""`` for passthrough-only ones (bayer, yuv422)."""

    name: str
    dtype: np.dtype
    channels: int
    colour: str | None

    @property
    def pixel_bytes(self) -> int:
        return self.channels * self.dtype.itemsize

    @property
    def cv_type(self) -> str:
        """E.g. ``8UC3``."""
        return f"{_CV_DEPTH[self.dtype.str[1:]]}C{self.channels}"


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_NAMED: dict[str, tuple[np.dtype, int, str]] = {
    "mono8": (_U8, 1, "gray"), "mono16": (_U16, 1, "gray"),
    "rgb8": (_U8, 3, "rgb"), "bgr8": (_U8, 3, "bgr"), "rgba8": (_U8, 4, "rgba"), "bgra8": (_U8, 4, "bgra"),
    "rgb16": (_U16, 3, "rgb"), "bgr16": (_U16, 3, "bgr"), "rgba16": (_U16, 4, "rgba"), "bgra16": (_U16, 4, "bgra"),
    # known to cv_bridge, passthrough only here
    "yuv422": (_U8, 2, ""), "yuv422_yuy2": (_U8, 2, ""),
    **{f"bayer_{p}{bits}": (dt, 1, "") for p in ("rggb", "bggr", "gbrg", "grbg")
       for bits, dt in ((8, _U8), (16, _U16))},
}
_GENERIC = re.compile(r"(8U|8S|16U|16S|32S|32F|64F)(?:C([0-9]+))?")
_GENERIC_DTYPES = {"8U": "u1", "8S": "i1", "16U": "u2", "16S": "i2", "32S": "i4", "32F": "f4", "64F": "f8"}
_CV_DEPTH = {v: k for k, v in _GENERIC_DTYPES.items()}
_MAX_CHANNELS = 512   # OpenCV's CV_CN_MAX


def encoding_info(encoding: str) -> EncodingInfo:
    """The :class:`EncodingInfo` of a named (``rgb8``, ``mono16``, ...) or generic
    (``8UC3``, ``32FC1``, ``16U``) encoding; :class:`ConversionError` if unknown."""
    enc = str(encoding)
    if enc in _NAMED:
        dt, ch, colour = _NAMED[enc]
        return EncodingInfo(enc, dt, ch, colour)
    m = _GENERIC.fullmatch(enc)
    if m and (m.group(2) is None or 1 <= int(m.group(2)) <= _MAX_CHANNELS):
        return EncodingInfo(enc, np.dtype(_GENERIC_DTYPES[m.group(1)]), int(m.group(2) or 1), None)
    raise ConversionError("bad_encoding", f"unknown image encoding {enc!r}")


def message_bytes(data: Any) -> np.ndarray:
    """``msg.data`` (array.array, bytes, numpy uint8, list) as a flat uint8 array (no copy if possible)."""
    if isinstance(data, list):
        return np.asarray(data, dtype=np.uint8)
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def check_layout(msg: Any, side_range: tuple[int, int] | None = None) -> EncodingInfo:
    """The encoding of an Image message after cv_bridge's layout checks (``empty``, ``bad_layout``);
    ``side_range``: the accepted ``(min, max)`` of height and width, checked first (``bad_size``)."""
    info = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    n = len(msg.data)
    if h == 0 or w == 0 or n == 0:
        raise ConversionError("empty", f"empty {info.name} image: height={h} width={w} len(data)={n}")
    if side_range is not None and not all(side_range[0] <= s <= side_range[1] for s in (h, w)):
        raise ConversionError("bad_size", f"image {w}x{h} outside the accepted side range "
                                          f"[{side_range[0]}, {side_range[1]}]")
    row = w * info.pixel_bytes
    if step < row:
        raise ConversionError("bad_layout", f"{info.name} image step {step} is smaller than width*bytes_per_pixel "
                                            f"= {w}*{info.pixel_bytes} = {row}")
    if h * step != n:
        raise ConversionError("bad_layout", f"{info.name} image size mismatch: height*step = {h}*{step} = "
                                            f"{h * step} != len(data) = {n}")
    return info


def image_to_numpy(msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
    """``sensor_msgs/Image`` -> numpy, as ``CvBridge.imgmsg_to_cv2``: row padding dropped, host byte
    order; conversions as :func:`convert_encoding`."""
    info = check_layout(msg)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    raw = message_bytes(msg.data)
    row = w * info.pixel_bytes
    if step != row:
        raw = np.ascontiguousarray(raw.reshape(h, step)[:, :row])
    out = raw.view(info.dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    if not out.dtype.isnative:
        out = out.astype(info.dtype)   # byte swap into host order
    out = out.reshape((h, w) if info.channels == 1 else (h, w, info.channels))
    return out if desired_encoding == "passthrough" else convert_encoding(out, info.name, desired_encoding)


def _cast(a: np.ndarray, dst: np.dtype) -> np.ndarray:
    """cv_bridge's depth step (OpenCV's ``convertTo``): 8 -> 16 bit scaled by 65535/255, 16 -> 8 by
    255/65535, else a plain cast; integers saturate, floats round half to even, NaN -> 0."""
    scale = {(1, 2): 65535.0 / 255.0, (2, 1): 255.0 / 65535.0}.get((a.dtype.itemsize, dst.itemsize), 1.0)
    if dst.kind == "f":
        return a.astype(dst)
    v = a.astype(np.float64) * scale if (scale != 1.0 or a.dtype.kind == "f") else a
    if v.dtype.kind == "f":
        v = np.nan_to_num(np.rint(v), nan=0.0)
    lim = np.iinfo(dst)
    return np.clip(v, lim.min, lim.max).astype(dst)


def convert_encoding(a: np.ndarray, src: str, dst: str) -> np.ndarray:
    """``a`` from encoding ``src`` to ``dst`` with cv_bridge's rules (between colour encodings
    ``cvtColor`` then an 8 <-> 16 bit rescale; colour to generic or generic to generic a saturating
    cast; generic to colour never), never sharing memory with ``a``."""
    si, di = encoding_info(src), encoding_info(dst)
    if si.name == di.name:
        return np.array(a, copy=True)
    cannot = f"cannot convert image encoding {si.name!r} to {di.name!r}"
    if si.colour == "" or di.colour == "":
        raise ConversionError("bad_encoding", cannot)
    if si.colour is None or di.colour is None:
        if si.colour is None and di.colour is not None:
            raise ConversionError("bad_encoding", f"{cannot}: {si.name!r} is not a colour encoding but {di.name!r} is")
        if si.channels != di.channels:
            raise ConversionError("bad_encoding", f"{cannot}: {si.channels} vs {di.channels} channels")
        return _cast(a, di.dtype)
    out = a
    if si.colour != di.colour:
        try:
            out = cv2.cvtColor(np.ascontiguousarray(a), getattr(cv2, f"COLOR_{si.colour.upper()}2{di.colour.upper()}"))
        except cv2.error as exc:
            raise ConversionError("bad_encoding", f"cannot convert {si.name!r} to {di.name!r}: {exc}") from None
    if si.dtype != di.dtype:
        out = _cast(out, di.dtype)
    return np.array(out, copy=True) if out is a else out


def image_message_fields(a: Any, encoding: str = "passthrough") -> dict[str, Any]:
    """The ``sensor_msgs/Image`` fields but the header, as ``cv2_to_imgmsg`` fills them (``data``
    a contiguous uint8 array); the array's type must match ``encoding``."""
    if not isinstance(a, np.ndarray):
        raise ConversionError("bad_data", f"expected a numpy array, got {type(a).__name__}")
    if a.ndim not in (2, 3):
        raise ConversionError("bad_data", f"expected an (H, W) or (H, W, C) array, got shape {a.shape}")
    if a.size == 0:
        raise ConversionError("empty", f"cannot encode an empty image (shape {a.shape})")
    if a.dtype.str[1:] not in _CV_DEPTH:
        raise ConversionError("bad_encoding", f"no image encoding for dtype {a.dtype}")
    cv_type = EncodingInfo("", a.dtype, 1 if a.ndim == 2 else a.shape[2], None).cv_type
    enc = cv_type if encoding == "passthrough" else str(encoding)
    if encoding != "passthrough" and (need := encoding_info(enc).cv_type) != cv_type:
        raise ConversionError("bad_encoding", f"encoding {enc!r} needs an image of type {need}, got {cv_type} "
                                              f"(dtype {a.dtype}, shape {a.shape})")
    big = a.dtype.str[0] == ">"   # dtype.str spells native order as "<" or ">"
    data = message_bytes(a)
    h = int(a.shape[0])
    return {"height": h, "width": int(a.shape[1]), "encoding": enc, "is_bigendian": int(big),
            "step": data.size // h, "data": data}


class ImageBridge:
    """``CvBridge``'s two image calls without cv_bridge; ``image_type`` (e.g. ``sensor_msgs.msg.Image``)
    is the message :meth:`cv2_to_imgmsg` builds."""

    def __init__(self, image_type: Callable[[], Any]) -> None:
        self.image_type = image_type

    def imgmsg_to_cv2(self, img_msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
        return image_to_numpy(img_msg, desired_encoding)

    def cv2_to_imgmsg(self, cvim: Any, encoding: str = "passthrough", header: Any = None) -> Any:
        f = image_message_fields(cvim, encoding)
        msg = self.image_type()
        if header is not None:
            msg.header = header
        msg.height, msg.width, msg.encoding = f["height"], f["width"], f["encoding"]
        msg.is_bigendian, msg.step = f["is_bigendian"], f["step"]
        if hasattr(msg.data, "frombytes"):   # rclpy: array.array('B'), filled without per-byte checks
            msg.data.frombytes(memoryview(f["data"]))
        else:
            msg.data = f["data"].tobytes()
        return msg


def depth_m_to_mm16(depth_m: np.ndarray) -> np.ndarray:
    """REP-118 depth: float metres -> uint16 millimetres (rounded), 0 for invalid
    (NaN, inf, <= 0) and for values beyond 65.535 m."""
    d = np.asarray(depth_m, dtype=np.float32)
    mm = np.rint(d * 1000.0)
    bad = ~np.isfinite(mm) | (mm <= 0) | (mm > 65535)
    mm[bad] = 0
    return mm.astype(np.uint16)


def sensor_array(modality: str, data: np.ndarray) -> np.ndarray:
    """A simulator array -> the element type of the modality's published encoding (rgb
    float [0, 1] -> uint8, depth metres -> uint16 mm, radar -> float32); no other change."""
    a = np.asarray(data)
    if modality == "rgb":
        return a if a.dtype == np.uint8 else (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if modality == "depth":
        return a if a.dtype == np.uint16 else depth_m_to_mm16(a)
    return a.astype(np.float32, copy=False)


#: Message kinds by ROS type.
MESSAGE_KINDS: dict[str, str] = {"sensor_msgs/Image": "image", "sensor_msgs/CompressedImage": "compressed",
                                 "sensor_msgs/PointCloud2": "pointcloud2"}
#: What each modality accepts, per message kind: Image encodings, CompressedImage formats,
#: and ``PointCloud2`` for the radar.
STREAM_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "rgb": {"image": ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC4", "8UC1"),
            "compressed": ("jpeg", "png"), "pointcloud2": ()},
    "depth": {"image": ("16UC1", "mono16", "32FC1"), "compressed": ("png", "compressedDepth"), "pointcloud2": ()},
    "radar": {"image": ("32FC1", "64FC1"), "compressed": (), "pointcloud2": ("PointCloud2",)},
}
#: Generic OpenCV types read in OpenCV's channel order on rgb streams.
_OPENCV_ORDER = {"8UC3": "bgr8", "8UC4": "bgra8", "8UC1": "mono8"}
_KIND_TEXT = {"image": "Image encodings", "compressed": "CompressedImage formats", "pointcloud2": "sensor_msgs"}
#: Words of a CompressedImage format -> its kind, first match wins.
_COMPRESSED_KINDS = (("compresseddepth", "compressedDepth"), ("png", "png"), ("jpeg", "jpeg"), ("jpg", "jpeg"))


def supported_text(modality: str, kinds: Sequence[str] = tuple(_KIND_TEXT)) -> str:
    return " or ".join(f"{_KIND_TEXT[k]} {list(v)}" for k, v in STREAM_FORMATS[modality].items() if v and k in kinds)


def compressed_kind(fmt: str) -> str:
    """CompressedImage ``format`` (image_transport's ``"rgb8; jpeg compressed bgr8"``, or just
    ``"jpeg"``) -> ``compressedDepth`` | ``png`` | ``jpeg`` | the format itself."""
    f = fmt.lower()
    return next((kind for key, kind in _COMPRESSED_KINDS if key in f), fmt.strip())


def message_encoding(msg: Any, kind: str) -> str:
    """The encoding (Image), compressed format (CompressedImage) or ``PointCloud2`` of ``msg``."""
    if kind == "compressed":
        return compressed_kind(str(msg.format))
    return "PointCloud2" if kind == "pointcloud2" else str(msg.encoding)


def check_supported(modality: str, encoding: str, kind: str) -> bool:
    return encoding in STREAM_FORMATS[modality][kind]


ToArray = Callable[[Any, str], np.ndarray]


def decode_image(msg: Any, modality: str, to_array: ToArray = image_to_numpy,
                 side_range: tuple[int, int] | None = None) -> np.ndarray:
    """``sensor_msgs/Image`` -> the modality's array; ``to_array`` is an ``imgmsg_to_cv2``-like call
    (cv_bridge's in the nodes when importable), run after the layout check (see :func:`check_layout`
    for ``side_range``)."""
    enc = str(msg.encoding)
    if not check_supported(modality, enc, "image"):
        raise ConversionError("bad_encoding", f"Image encoding {enc!r} cannot feed a {modality} stream; "
                                              f"supported: {supported_text(modality, ('image',))}")
    check_layout(msg, side_range)
    try:
        if modality == "rgb" and enc in _OPENCV_ORDER:
            a = convert_encoding(to_array(msg, "passthrough"), _OPENCV_ORDER[enc], "rgb8")
        else:
            a = to_array(msg, "rgb8" if modality == "rgb" else "passthrough")
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bridge's own error types (CvBridgeError, cv2.error, ...)
        raise ConversionError("bad_data", f"cannot read {enc} image: {type(exc).__name__}: {exc}") from None
    return np.require(sensor_array(modality, a), requirements="CWO")   # contiguous, writable, owning


def _imdecode(buf: np.ndarray, flags: int, what: str, depth16: bool = False) -> np.ndarray:
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise ConversionError("bad_data", f"cannot decode {what} ({buf.size} bytes): not a valid image")
    if depth16 and (img.dtype != np.uint16 or img.ndim != 2):
        raise ConversionError("bad_data", f"{what} must be 16-bit single channel (mm), got {img.dtype} {img.shape}")
    return img


def decode_compressed_depth(data: np.ndarray, fmt: str) -> np.ndarray:
    """compressed_depth_image_transport payload (12-byte header ``int32 format; float32
    depthQuantA, depthQuantB``, then a PNG) -> ``uint16`` mm; ``32FC1`` PNGs hold
    ``depthQuantA / depth + depthQuantB`` (0 = invalid)."""
    if data.size <= 12:
        raise ConversionError("bad_data", f"compressedDepth payload of {data.size} bytes is too short "
                                          "(12-byte header + PNG)")
    _, qa, qb = struct.unpack("<iff", data[:12].tobytes())
    img = _imdecode(data[12:], cv2.IMREAD_UNCHANGED, "compressedDepth PNG", depth16=True)
    if fmt.lower().startswith("32fc1"):
        v = img.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth_m = np.float32(qa) / (v - np.float32(qb))
        depth_m[img == 0] = np.nan
        return depth_m_to_mm16(depth_m)
    return np.array(img, dtype=np.uint16)


def decode_compressed(msg: Any, modality: str) -> np.ndarray:
    fmt = str(msg.format)
    kind = compressed_kind(fmt)
    if not check_supported(modality, kind, "compressed"):
        raise ConversionError("bad_encoding", f"CompressedImage format {fmt!r} cannot feed a {modality} stream; "
                                              f"supported: {supported_text(modality)}")
    data = message_bytes(msg.data)
    if modality == "rgb":   # OpenCV decodes to bgr
        return np.ascontiguousarray(_imdecode(data, cv2.IMREAD_COLOR, f"{kind} image")[:, :, ::-1])
    if kind == "compressedDepth":
        return decode_compressed_depth(data, fmt)
    return np.array(_imdecode(data, cv2.IMREAD_UNCHANGED, "png depth image", depth16=True), dtype=np.uint16)


def decode_stream(msg: Any, kind: str, modality: str, *, to_array: ToArray = image_to_numpy,
                  cloud_to_map: Callable[[Any], np.ndarray] | None = None,
                  side_range: tuple[int, int] | None = None) -> np.ndarray:
    """A message of ``kind`` (:data:`MESSAGE_KINDS` value) -> the array a ``modality`` stream
    reads. PointCloud2 radar needs ``cloud_to_map`` (a :class:`admn_ros.core.radar_cloud.CloudToRangeAzimuth`);
    ``side_range`` bounds an Image's sides (:func:`check_layout`)."""
    if kind == "image":
        return decode_image(msg, modality, to_array, side_range)
    if kind == "compressed":
        return decode_compressed(msg, modality)
    if kind == "pointcloud2":
        if modality != "radar":
            raise ConversionError("bad_encoding", f"sensor_msgs/PointCloud2 cannot feed a {modality} stream; "
                                                  f"supported: {supported_text(modality)}")
        if cloud_to_map is None:
            raise ConversionError("bad_encoding", "PointCloud2 radar needs a range-azimuth map configuration")
        try:
            return np.require(cloud_to_map(msg), np.float32, requirements="CWO")
        except ConversionError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed cloud must not take a node down
            raise ConversionError("bad_cloud", f"cannot read PointCloud2: {type(exc).__name__}: {exc}") from None
    raise ConversionError("bad_encoding", f"unknown message kind {kind!r}; "
                                          f"known: {sorted(set(MESSAGE_KINDS.values()))}")
