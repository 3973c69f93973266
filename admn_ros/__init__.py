"""admn_ros: a ROS 2 package running ADMN, the layer-wise Adaptive Depth Multimodal Network.

The rclpy-free core is :mod:`admn_ros.core`, the ROS 2 nodes :mod:`admn_ros.ros`. The rosidl-generated
``admn_ros.msg`` may be installed in another ``site-packages``; extending ``__path__`` finds it there.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821 (module attribute)

__version__ = "0.1.0"
