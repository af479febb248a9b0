"""The fleet inventory: ``fleet.yaml``'s schema (:mod:`.schema`) and the store that edits it (:mod:`.store`)."""

from __future__ import annotations

from .schema import (
    CUT_PRESETS,
    Broker,
    BrokerTLS,
    BuildSpec,
    Cut,
    Defaults,
    Device,
    Fleet,
    ImageRef,
    Images,
    ModelSpec,
    parse_cut,
    validate_bits,
)
from .store import DEFAULT_FLEET_FILE, FleetStore, fleet_error, load_fleet

__all__ = [
    "CUT_PRESETS",
    "DEFAULT_FLEET_FILE",
    "Broker",
    "BrokerTLS",
    "BuildSpec",
    "Cut",
    "Defaults",
    "Device",
    "Fleet",
    "FleetStore",
    "ImageRef",
    "Images",
    "ModelSpec",
    "fleet_error",
    "load_fleet",
    "parse_cut",
    "validate_bits",
]
