"""Bag I/O without ROS message packages: record (``record``), read as synchronized frames (``reader``), write
outputs (``writer``) and replay bags through a pipeline (``replay``, ``report``, ``realtime``)."""
