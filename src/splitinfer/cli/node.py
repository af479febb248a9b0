"""``splitctl node head|tail``: the programs the edge and tail containers run."""


import logging
from typing import Any, Optional, Tuple

import typer
from typing_extensions import Annotated

from ._common import BrokerOpt, FleetOpt, PrefixOpt, broker_config, stop_on_signals
from ._console import print_json

app = typer.Typer(help="Run a node: what the containers run. Nodes follow the coordinator's assignment.",
                  no_args_is_help=True)

IdOpt = Annotated[str, typer.Option("--id", envvar="SPLITINFER_DEVICE_ID", help="This device's id in the fleet.")]
ModelDirOpt = Annotated[str, typer.Option("--model-dir", envvar="SPLITINFER_MODEL_DIR",
                                          help="Where assigned model files are looked up.")]
DeviceOpt = Annotated[str, typer.Option("--device", envvar="SPLITINFER_DEVICE",
                                         help="torch device: auto (CUDA when torch sees it, else cpu), cpu, cuda, "
                                              "cuda:1.")]
HalfOpt = Annotated[bool, typer.Option("--half", envvar="SPLITINFER_HALF",
                                       help="Run the model in fp16: on CUDA (refused where the device has no fp16 "
                                            "convolution, e.g. the CPU under torch 1.11).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
ThreadsOpt = Annotated[int, typer.Option(min=0, envvar="SPLITINFER_THREADS",
                                         help="CPU threads for torch (0: all of this machine's cores).")]
ProfileOpt = Annotated[bool, typer.Option(help="Measure (or load the cached) per-layer profile of the assigned "
                                               "model and report it, for --cut auto.")]


def _prepare(verbose: bool, threads: int, device: str, half: bool) -> str:
    """Logging, threads, then the device this node runs on (resolved: ``cpu``, ``cuda:0``); ModelError when the
    device or fp16 on it cannot be had, before the node connects."""
    from splitinfer.node.threads import set_threads

    count = set_threads(threads)  # first: before anything imports Ultralytics
    from splitinfer.node.link import setup_logging
    from splitinfer.splitting.device import check_half, resolve_device

    setup_logging(verbose)
    resolved = resolve_device(device)
    if half:
        check_half(resolved)
    logging.getLogger("splitinfer.node").info("torch on %s%s, %d CPU thread(s)", resolved, " (fp16)" if half else "",
                                              count)
    return resolved


def _prepare_or_fail(verbose: bool, threads: int, device: str, half: bool, node: Tuple[Any, str, str, str, str]
                     ) -> str:
    """:func:`_prepare`; a device this node cannot have (no GPU in the container, fp16 where there is none) is
    said the way every failure at start is: state ``failed`` with the reason, retained, then exit 1."""
    from splitinfer.errors import ModelError, TransportError

    try:
        return _prepare(verbose, threads, device, half)
    except ModelError as exc:
        from splitinfer.broker.topics import Topics
        from splitinfer.node.link import NodeLink, device_info

        broker, fleet, prefix, device_id, role = node
        link = NodeLink(broker_config(broker), Topics(fleet, prefix), device_info(device_id, role, device=device),
                        metrics=lambda: {})
        try:
            link.start(timeout=3)  # a short wait: the node exits either way
            link.fail(f"cannot run on device {device}{' in fp16' if half else ''}: {exc}")
        except TransportError:
            logging.getLogger("splitinfer.node").warning("could not reach the broker to say so")
        finally:
            link.close()
        raise


@app.command("head")
def head(
    device_id: IdOpt,
    source: Annotated[str, typer.Option("--source", envvar="SPLITINFER_SOURCE",
                                        help="Video file, image folder, camera index or /dev/videoN (V4L2), "
                                             "csi://N[?width=&height=&fps=&flip=] (Jetson CSI camera), rtsp:// "
                                             "URL, GStreamer pipeline, or synthetic[:N].")] = "synthetic",
    broker: BrokerOpt = None,
    fleet: FleetOpt = "default",
    prefix: PrefixOpt = "splitinfer",
    fps: Annotated[float, typer.Option(envvar="SPLITINFER_FPS",
                                       help="Pace file sources at this rate, dropping stale frames; 0 reads as "
                                            "fast as the head takes frames.")] = 0.0,
    frames: Annotated[Optional[int], typer.Option(help="Stop after this many frames.")] = None,
    loop: Annotated[bool, typer.Option(envvar="SPLITINFER_LOOP", help="Restart file sources at their end.")] = False,
    model_dir: ModelDirOpt = "",
    device: DeviceOpt = "auto",
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
    resolved = _prepare_or_fail(verbose, threads, device, half, (broker, fleet, prefix, device_id, "head"))
    from splitinfer.broker.topics import Topics
    from splitinfer.head import HeadNode

    node = HeadNode(broker_config(broker), Topics(fleet, prefix), device_id, source, fps=fps, frames=frames,
                    loop=loop, model_dir=model_dir, device=resolved, half=half, profile=profile,
                    probe_every=probe_every, allow_offload=allow_offload)
    _serve(node)


@app.command("tail")
def tail(
    device_id: IdOpt,
    broker: BrokerOpt = None,
    fleet: FleetOpt = "default",
    prefix: PrefixOpt = "splitinfer",
    model_dir: ModelDirOpt = "",
    device: DeviceOpt = "auto",
    half: HalfOpt = False,
    conf: Annotated[float, typer.Option(help="Confidence threshold for published detections.")] = 0.25,
    queue: Annotated[int, typer.Option(help="Feature messages held before the oldest are dropped.")] = 64,
    threads: ThreadsOpt = 0,
    profile: ProfileOpt = True,
    verbose: VerboseOpt = False,
) -> None:
    """Decode features from the heads routed here → batch → tail layers → NMS → publish detections."""
    resolved = _prepare_or_fail(verbose, threads, device, half, (broker, fleet, prefix, device_id, "tail"))
    from splitinfer.broker.topics import Topics
    from splitinfer.tail import TailNode

    node = TailNode(broker_config(broker), Topics(fleet, prefix), device_id, model_dir=model_dir, device=resolved,
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
