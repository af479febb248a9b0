"""A whole system on one machine: the process launcher every one-machine run shares, and ``run --local``.

    processes.py  Processes: named child processes with their logs, checked and stopped together
    run_local.py  run_local(): a broker, the coordinator, a tail and a head, a source through them, results out

``splitctl run --local``, ``splitctl bench`` and the test suite all start systems through here. Not part of the
node runtime: it orchestrates the programs the containers run.
"""
