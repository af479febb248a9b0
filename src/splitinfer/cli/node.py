"""``splitctl node head|tail``: the programs the edge and tail containers run."""


from typing import Any, Optional

import typer
from typing_extensions import Annotated

from ._common import BrokerOpt, FleetOpt, PrefixOpt, broker_config, stop_on_signals
from ._console import print_json

app = typer.Typer(help="Run a node: what the containers run. Nodes follow the coordinator's assignment.",
                  no_args_is_help=True)

IdOpt = Annotated[str, typer.Option("--id", envvar="SPLITINFER_DEVICE_ID", help="This device's id in the fleet.")]
ModelDirOpt = Annotated[str, typer.Option("--model-dir", envvar="SPLITINFER_MODEL_DIR",
                                          help="Where assigned model files are looked up.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1.")]
HalfOpt = Annotated[bool, typer.Option("--half", help="Run the model in fp16 (GPU).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).")]
ProfileOpt = Annotated[bool, typer.Option(help="Measure (or load the cached) per-layer profile of the assigned "
                                               "model and report it, for --cut auto.")]


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


@app.command("head")
def head(
    device_id: IdOpt,
    source: Annotated[str, typer.Option("--source", envvar="SPLITINFER_SOURCE",
                                        help="Video file, camera index, rtsp:// URL, GStreamer pipeline, image "
                                             "folder, or synthetic[:N].")] = "synthetic",
    broker: BrokerOpt = None,
    fleet: FleetOpt = "default",
    prefix: PrefixOpt = "splitinfer",
    fps: Annotated[float, typer.Option(envvar="SPLITINFER_FPS",
                                       help="Pace file sources at this rate, dropping stale frames; 0 reads as "
                                            "fast as the head takes frames.")] = 0.0,
    frames: Annotated[Optional[int], typer.Option(help="Stop after this many frames.")] = None,
    loop: Annotated[bool, typer.Option(envvar="SPLITINFER_LOOP", help="Restart file sources at their end.")] = False,
    model_dir: ModelDirOpt = "",
    device: DeviceOpt = "cpu",
    half: HalfOpt = False,
    threads: ThreadsOpt = 0,
    profile: ProfileOpt = True,
    allow_offload: Annotated[bool, typer.Option(
        "--allow-offload", envvar="SPLITINFER_ALLOW_OFFLOAD",
        help="Let the coordinator assign offload: this camera's frames (compressed) go to a tail. Off by default: "
             "frames stay on the camera.")] = False,
    probe_every: Annotated[float, typer.Option(help="Seconds between link probes to the broker (0: only at "
                                                    "start).")] = 30.0,
    verbose: VerboseOpt = False,
) -> None:
    """Capture → letterbox → head layers → encode → publish features to the assigned tail."""
    from splitinfer.broker.topics import Topics
    from splitinfer.head import HeadNode
    from splitinfer.node.link import setup_logging

    setup_logging(verbose)
    _threads(threads)
    node = HeadNode(broker_config(broker), Topics(fleet, prefix), device_id, source, fps=fps, frames=frames,
                    loop=loop, model_dir=model_dir, device=device, half=half, profile=profile,
                    probe_every=probe_every, allow_offload=allow_offload)
    _serve(node)


@app.command("tail")
def tail(
    device_id: IdOpt,
    broker: BrokerOpt = None,
    fleet: FleetOpt = "default",
    prefix: PrefixOpt = "splitinfer",
    model_dir: ModelDirOpt = "",
    device: DeviceOpt = "cpu",
    half: HalfOpt = False,
    conf: Annotated[float, typer.Option(help="Confidence threshold for published detections.")] = 0.25,
    queue: Annotated[int, typer.Option(help="Feature messages held before the oldest are dropped.")] = 64,
    threads: ThreadsOpt = 0,
    profile: ProfileOpt = True,
    verbose: VerboseOpt = False,
) -> None:
    """Decode features from the heads routed here → batch → tail layers → NMS → publish detections."""
    from splitinfer.broker.topics import Topics
    from splitinfer.node.link import setup_logging
    from splitinfer.tail import TailNode

    setup_logging(verbose)
    _threads(threads)
    node = TailNode(broker_config(broker), Topics(fleet, prefix), device_id, model_dir=model_dir, device=device,
                    half=half, conf=conf, queue=queue, profile=profile)
    _serve(node)


def _serve(node: Any) -> None:
    """Run a node until its work is done or a signal stops it; print its final counts as JSON either way. A node
    that failed (state ``failed``, said in its info) raises, and the command exits 1."""
    stop = stop_on_signals()
    try:
        summary = node.run(stop)
    except KeyboardInterrupt:
        summary = node.metrics()
    print_json(summary)
    _exit_now_if_profiling()


def _exit_now_if_profiling() -> None:
    """A profile still being measured on its thread (a short run, or a stop) would be torn down inside torch by
    the interpreter's shutdown, which aborts the process; the node has said goodbye, so leave at once."""
    import os
    import sys
    import threading

    if any(t.name == "profiling" and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
