from __future__ import annotations

import splitinfer
from splitinfer import errors


def test_every_error_derives_from_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.SplitInferError)


def test_fleet_config_error_names_file_and_field() -> None:
    exc = errors.FleetConfigError("expected 'head' or 'tail', got 'hed'", path="fleet.yaml", field="devices[2].role")
    assert str(exc) == "fleet.yaml: devices[2].role: expected 'head' or 'tail', got 'hed'"
    assert exc.field == "devices[2].role"


def test_public_api_all_is_complete_and_importable() -> None:
    public = {n for n in dir(splitinfer) if not n.startswith("_")} - {"annotations", "importlib", "Any"}
    assert public <= set(splitinfer.__all__)
    for name in splitinfer.__all__:
        assert getattr(splitinfer, name) is not None
