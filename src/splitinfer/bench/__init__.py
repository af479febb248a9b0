"""The one home for benchmarks: each module here is a ``splitctl bench …`` subcommand (cli/bench.py), prints a
table or JSON, and writes its JSON under ``bench/results/``. None of them fails on a timing.

    codec.py          bench codec        rate, fidelity and speed of the codec on the user's frames, beside images
    codec_curve.py    bench codec-curve  the codec's rate–fidelity study (cuts, qualities, image codecs, clips)
    codec_frames.py                      its frame sets (calibration, evaluation, small, static, panning)
    rate_fidelity.py                     what both measure: tallies, references, image codecs, matching
    codec_speed.py    bench codec-speed  encode/decode time against the head and the seed codec (seed_codec.py)
    e2e.py            bench e2e          every mode (local, each cut, offload per image codec, auto) over shaped links
                                         with the head on a CPU budget (netns.py, delay.py, budget.py, e2e_procs.py,
                                         e2e_report.py)
    overhead.py       bench overhead     encode + transit + decode against unsplit inference
    soak.py           bench soak         RSS of head and tail over a long run
    broker_latency.py bench broker       publish → receive latency per payload size and broker kind
    frames.py         bench frames       the codec benchmark's 24-frame set
    startup.py        bench startup      how long a node takes to serve, cold and warm profile cache
"""
