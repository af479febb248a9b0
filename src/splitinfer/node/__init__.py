"""What every node shares, head and tail alike: its link to the fleet (state, info, assignment, metrics,
link probes), loading the model it is assigned, and the statistics it keeps. Part of the node runtime: Python 3.8.

    link.py    NodeLink, device_info, measure_link
    models.py  load_assigned_model (resolve under the model folder, check the sha256)
    stats.py   percentile, LatencyStats, Rate, Calibration
    threads.py set_threads (0: every core), before Ultralytics pins torch to one thread
"""
