"""Bag I/O without ROS message packages: record the (simulated) network to rosbag2 (``record``),
read bags as synchronized ADMN frames (``reader.BagFrames``), write pipeline outputs for RViz /
Foxglove (``writer``) and replay bags through a pipeline (``replay``, ``report``, ``realtime``).
"""
