"""Load, validate and edit fleet.yaml, keeping the user's comments and key order.

The file is read with ruamel.yaml in round-trip mode: :class:`FleetStore` keeps the parsed document, edits it
in place (``add_device``, ``remove_device``) and writes it back, so a ``splitctl fleet add`` does not lose a
comment. Every problem becomes a :class:`~splitinfer.errors.FleetConfigError` that names the file, the field
path and, where we can tell, the fix::

    fleet.yaml: devices[2].role: expected 'head' or 'tail', got 'hed'
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Tuple, Type, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from splitinfer.errors import FleetConfigError

from .schema import (
    Broker,
    BrokerTLS,
    BuildSpec,
    Defaults,
    Device,
    FieldValueError,
    Fleet,
    ImageCodec,
    ImageRef,
    Images,
    ModelSpec,
)

__all__ = ["DEFAULT_FLEET_FILE", "FleetStore", "fleet_error", "load_fleet"]

DEFAULT_FLEET_FILE = "fleet.yaml"

_SKELETON = """\
# splitinfer fleet inventory: see docs/deploying.md for every field.
fleet: {name}
broker:
  url: mqtt://127.0.0.1:1883   # edit: the broker every device can reach
devices: []
"""

_MODELS: Tuple[Type[BaseModel], ...] = (
    Fleet,
    Broker,
    BrokerTLS,
    ModelSpec,
    Defaults,
    Images,
    ImageRef,
    ImageCodec,
    BuildSpec,
    Device,
)
_ALL_FIELDS = sorted({name for model in _MODELS for name in model.model_fields})


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    return yaml


def _plain(node: Any) -> Any:
    """ruamel's commented containers and scalar subclasses → plain dicts, lists, str, int, float."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _field_path(loc: Iterable[Union[int, str]]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif "[" in item or item in ("int", "str"):
            continue  # pydantic's union member tags, e.g. "literal['all']"
        else:
            path += f".{item}" if path else item
    return path


def _describe(error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f", got {value!r}" if isinstance(value, (str, int, float, bool)) or value is None else ""
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, _ALL_FIELDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see docs/deploying.md for the fields"
        return f"unknown field {name!r}{hint}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}{got}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer{got}"
    if kind == "greater_than_equal":
        return f"expected a number ≥ {ctx['ge']}{got}"
    if kind == "string_type":
        return f"expected text{got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value){got}"
    if kind == "list_type":
        return f"expected a list{got}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:] + got


def fleet_error(
    exc: ValidationError, *, path: Optional[str], rename: Optional[Callable[[str], str]] = None
) -> FleetConfigError:
    """Translate a pydantic ``ValidationError`` into one FleetConfigError, one line per problem.

    ``rename`` maps a field path to what the user typed (``role`` → ``--role`` for CLI options).
    """
    problems: List[Tuple[Optional[str], str]] = []
    for error in exc.errors(include_url=False):
        field = _field_path(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldValueError):  # a whole-model check naming a field inside the model
            field = f"{field}.{cause.field}" if field and not cause.field.startswith("[") else field + cause.field
        if rename and field:
            field = rename(field)
        problems.append((field or None, _describe(error)))
    (first_field, first_message), rest = problems[0], problems[1:]
    more = "".join("\n" + ": ".join(p for p in (path, field, message) if p) for field, message in rest)
    return FleetConfigError(first_message + more, path=path, field=first_field)


class FleetStore:
    """A fleet.yaml on disk: the validated :class:`Fleet` plus the round-trip document it came from."""

    def __init__(self, path: Union[str, os.PathLike[str]], document: CommentedMap, fleet: Fleet) -> None:
        self.path = Path(path)
        self.document = document
        self.fleet = fleet

    @property
    def label(self) -> str:
        return str(self.path)

    # -- reading ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Union[str, os.PathLike[str]], *, create: bool = False) -> FleetStore:
        """Read and validate ``path``. With ``create``, a missing file starts as a minimal skeleton (not saved)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not create:
                raise FleetConfigError(
                    "file not found; pass -f/--file (or set SPLITINFER_FLEET), or start one with `splitctl fleet add`",
                    path=str(path),
                ) from None
            text = _SKELETON.format(name=_default_name(path))
        except OSError as exc:
            raise FleetConfigError(f"cannot read: {exc.strerror}", path=str(path)) from exc
        document = _parse(text, str(path))
        return cls(path, document, _validate(document, str(path)))

    # -- editing ---------------------------------------------------------------------------------------------

    def add_device(self, device: Device) -> None:
        """Append ``device`` (validated against the whole fleet, so a duplicate id is refused)."""
        entry = device.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        entry = {"id": device.id, "role": device.role, "docker": device.docker, **entry}
        plain = _plain(self.document)
        plain["devices"] = [*(plain.get("devices") or []), entry]
        fleet = _validate_plain(plain, self.label)  # before touching the document: a refusal changes nothing
        devices = self.document.get("devices")
        if not isinstance(devices, CommentedSeq):
            devices = CommentedSeq()
            self.document["devices"] = devices
        node = CommentedMap(entry)
        if devices and isinstance(devices[-1], CommentedMap) and devices[-1].fa.flow_style():
            node.fa.set_flow_style()
        devices.append(node)
        self.fleet = fleet

    def ensure_model(self, path: str, imgsz: int = 640) -> bool:
        """Write a ``model:`` section after ``broker:`` when there is none (the nodes' default made explicit, for
        the user to edit); True when it was added."""
        if self.document.get("model") is not None:
            return False
        plain = _plain(self.document)
        plain["model"] = {"path": path, "imgsz": imgsz}
        fleet = _validate_plain(plain, self.label)
        keys = list(self.document)
        position = keys.index("broker") + 1 if "broker" in keys else len(keys)
        section = CommentedMap([("path", path), ("imgsz", imgsz)])
        section.yaml_add_eol_comment("every node loads this file, as the nodes see it (sha256: pins it)", "path")
        self.document.insert(position, "model", section)
        self.fleet = fleet
        return True

    def remove_device(self, device_id: str) -> Device:
        devices = self.document.get("devices") or []
        for index, entry in enumerate(devices):
            if isinstance(entry, dict) and entry.get("id") == device_id:
                removed = self.fleet.device(device_id)
                del devices[index]
                self.fleet = _validate(self.document, self.label)
                return removed
        known = ", ".join(d.id for d in self.fleet.devices) or "none"
        raise FleetConfigError(f"no device {device_id!r} (devices: {known})", path=self.label)

    def dumps(self) -> str:
        buffer = io.StringIO()
        _yaml().dump(self.document, buffer)
        return buffer.getvalue()

    def save(self) -> None:
        """Write atomically: a temporary file in the same folder, then rename over the original."""
        text = self.dumps()
        folder = self.path.resolve().parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            if self.path.exists():
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_fleet(path: Union[str, os.PathLike[str]] = DEFAULT_FLEET_FILE) -> Fleet:
    """Read and validate a fleet file. Raises FleetConfigError naming the file and the field."""
    return FleetStore.open(path).fleet


def _default_name(path: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in path.resolve().parent.name).strip("-_.")
    return name or "fleet"


def _parse(text: str, label: str) -> CommentedMap:
    try:
        document = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise FleetConfigError(f"{where}invalid YAML: {problem}", path=label) from exc
    except YAMLError as exc:
        raise FleetConfigError(f"invalid YAML: {exc}", path=label) from exc
    if not isinstance(document, CommentedMap):
        raise FleetConfigError("expected a mapping at the top (fleet:, broker:, devices:)", path=label)
    return document


def _validate(document: CommentedMap, label: str) -> Fleet:
    return _validate_plain(_plain(document), label)


def _validate_plain(data: Any, label: str) -> Fleet:
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        raise fleet_error(exc, path=label) from None
