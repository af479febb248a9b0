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
    import importlib

    public_modules = sorted(set(splitinfer._EXPORTS.values()))
    for module in public_modules:
        missing = set(importlib.import_module(module).__all__) - set(splitinfer.__all__)
        assert not missing, f"{module} exports {missing} but splitinfer.__all__ does not"
    for name in splitinfer.__all__:
        assert getattr(splitinfer, name) is not None
