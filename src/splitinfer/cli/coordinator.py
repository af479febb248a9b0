"""``splitctl coordinator``: registry, cut and route assignment, failover."""


import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from typing_extensions import Annotated

from splitinfer.errors import FleetConfigError

from ._common import BrokerOpt, FleetOpt, PrefixOpt, broker_config, stop_on_signals
from ._console import err_console

if TYPE_CHECKING:
    from splitinfer.coordinator import Policy


def parse_overrides(values: List[str]) -> dict:
    """``ID=CUT`` pairs → {id: Override(cut=CUT)}."""
    from splitinfer.broker.messages import Override, validated

    out = {}
    for value in values:
        device, sep, cut = value.partition("=")
        if not sep or not device or not cut:
            raise FleetConfigError(f"--override {value!r}: expected DEVICE=CUT, e.g. jetson-01=a")
        out[device] = validated(Override, {"cut": cut}, f"--override {value}")
    return out


def parse_image(value: str) -> dict:
    """``webp:80`` → {"format": "webp", "quality": 80}."""
    fmt, _, quality = value.partition(":")
    try:
        return {"format": fmt, "quality": int(quality or 80)}
    except ValueError:
        raise FleetConfigError(f"--image {value!r}: expected FORMAT[:QUALITY], e.g. webp:80") from None


def table_refs(paths: List[Path]) -> List[dict]:
    """``--table FILE`` → [{name, sha256}]: the nodes find it by name in their model folder and check its digest."""
    from splitinfer.splitting.model import file_sha256

    refs = []
    for path in paths:
        try:
            refs.append({"name": path.name, "sha256": file_sha256(str(path))})
        except OSError as exc:
            raise FleetConfigError(f"--table {path}: cannot read it ({exc.strerror or exc})") from None
    return refs


def parse_inventory(values: List[str]) -> dict:
    """``ID=head|tail`` pairs → {id: role}."""
    out = {}
    for value in values:
        device, sep, role = value.partition("=")
        if not sep or not device or role not in ("head", "tail"):
            raise FleetConfigError(f"--inventory {value!r}: expected DEVICE=head or DEVICE=tail")
        out[device] = role
    return out


def coordinator(
    model: Annotated[str, typer.Option(help="Model every node loads (path as the nodes see it).")] = "yolo11n.yaml",
    sha256: Annotated[str, typer.Option(help="Expected sha256 of a .pt model (nodes refuse another file).")] = "",
    imgsz: Annotated[int, typer.Option(help="Network input size.")] = 640,
    cut: Annotated[str, typer.Option(help="Default cut: a|b|c|d, a layer number, local (the whole model on the "
                                          "heads), offload (frames to the tail: --offload heads only), or auto "
                                          "(chosen from the nodes' profiles).")] = "b",
    bits: Annotated[int, typer.Option(help="Codec bit width (2..8, or 16/32 for float passthrough) at cuts no "
                                           "--table covers.")] = 4,
    quality: Annotated[int, typer.Option(min=1, max=100, help="Codec quality 1..100 at cuts a --table covers "
                                                              "(higher: more bytes, closer detections).")] = 50,
    keyframe_interval: Annotated[int, typer.Option(min=0, help="A keyframe every N frames per head, delta frames "
                                                               "between (0: every frame on its own).")] = 10,
    table: Annotated[Optional[List[Path]], typer.Option(
        "--table", metavar="FILE", help="A calibration table (splitctl calibrate), by its file in the nodes' model "
                                        "folder; repeatable, one per cut.")] = None,
    batch: Annotated[int, typer.Option(help="Frames per head batch.")] = 1,
    tail_batch: Annotated[int, typer.Option(help="Max frames a tail batches across heads.")] = 8,
    max_wait_ms: Annotated[float, typer.Option(help="Longest a tail waits to fill a batch.")] = 5.0,
    override: Annotated[Optional[List[str]], typer.Option(help="Per-device cut, DEVICE=CUT (repeatable).")] = None,
    offload: Annotated[Optional[List[str]], typer.Option(
        "--offload", metavar="DEVICE", help="A head that may send its frames to a tail (cut offload, or auto's "
                                            "choice); repeatable. Heads not named keep their frames.")] = None,
    image: Annotated[str, typer.Option(help="Offload's image codec, FORMAT[:QUALITY]: jpeg, webp or avif.")
                     ] = "webp:80",
    no_fallback: Annotated[Optional[List[str]], typer.Option(
        "--no-fallback", metavar="DEVICE", help="A head that must not run the whole model itself when its tail is "
                                                "gone; repeatable.")] = None,
    inventory: Annotated[Optional[List[str]], typer.Option(
        "--inventory", help="The fleet's devices, DEVICE=head|tail (repeatable): only these are planned, in these "
                            "roles. Without it (and without --file) devices' own claims are taken.")] = None,
    broker: BrokerOpt = None,
    fleet: FleetOpt = "default",
    prefix: PrefixOpt = "splitinfer",
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Take fleet name, broker, model, defaults and "
                                                 "per-device cuts from this fleet.yaml (flags are then ignored).")
                    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Register devices, assign each head a cut and a tail, and re-route heads when a tail goes offline."""
    from splitinfer.broker.topics import Topics
    from splitinfer.coordinator import Policy
    from splitinfer.coordinator.service import Coordinator
    from splitinfer.node.link import setup_logging

    setup_logging(verbose)
    if file is not None:
        from splitinfer.deploy.live import broker_config as fleet_broker_config
        from splitinfer.deploy.live import policy_from_fleet
        from splitinfer.fleet import FleetStore

        spec = FleetStore.open(file).fleet
        config, topics, policy = fleet_broker_config(spec, ""), Topics(spec.fleet), policy_from_fleet(spec)
    else:
        from splitinfer.broker.messages import validated
        from splitinfer.codec import CodecSettings

        codec = {"bits": bits, "quality": quality, "keyframe_interval": keyframe_interval}
        # CodecError now, not on every node later
        CodecSettings(bits=bits, quality=quality, keyframe_interval=keyframe_interval)
        policy = validated(Policy, dict(model=model, sha256=sha256, imgsz=imgsz, cut=cut, codec=codec,
                                        tables=table_refs(table or []),
                                        batch=batch, tail_batch=tail_batch, max_wait_ms=max_wait_ms,
                                        overrides=parse_overrides(override or []),
                                        roles=parse_inventory(inventory or []), image=parse_image(image),
                                        offload=offload or [], no_fallback=no_fallback or []),
                            "coordinator options")
        config, topics = broker_config(broker), Topics(fleet, prefix)
    err_console.print(started_line(topics.fleet, config.url, policy, "fleet.yaml" if file is not None else "flags"),
                      soft_wrap=True, highlight=False, markup=False)
    with contextlib.suppress(KeyboardInterrupt):  # SIGTERM/SIGINT: run's finally has said goodbye
        Coordinator(config, topics, policy).run(stop_on_signals())


def started_line(fleet: str, url: str, policy: "Policy", source: str) -> str:
    """What the coordinator says when it starts, before any device appears."""
    overrides = f", {len(policy.overrides)} per-device override(s)" if policy.overrides else ""
    inventory = ", ".join(f"{d}={r}" for d, r in sorted(policy.roles.items())) or (
        "none (devices claim their roles; give -f fleet.yaml or --inventory for a real fleet)")
    codec = f"{policy.codec.get('bits')}-bit"
    if policy.tables:
        quality = policy.codec.get("quality", 50)
        codec = f"quality {quality} at {len(policy.tables)} calibrated cut(s), {codec} elsewhere"
    return (f"coordinator for fleet {fleet} on {url}: model {policy.model} at {policy.imgsz}, cut {policy.cut}, "
            f"{codec}, batch {policy.batch}{overrides} (policy from {source}); "
            f"inventory: {inventory}; waiting for devices (Ctrl-C stops)")
