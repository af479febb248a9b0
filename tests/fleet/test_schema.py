"""fleet.yaml schema and error messages: every message names the file, the field path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitinfer.errors import FleetConfigError
from splitinfer.fleet import load_fleet, parse_cut

BASE = """\
fleet: traffic-a
broker: {url: "mqtt://10.0.0.2:1883"}
devices:
  - {id: cam-1, role: head, docker: "unix:///var/run/docker.sock", source: "0"}
  - {id: cam-2, role: head, docker: "ssh://nvidia@jetson-02", source: "rtsp://cam/2", runtime: nvidia}
  - {id: gpu-1, role: tail, docker: "tcp://gpu-01:2376", gpus: all}
"""


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(FleetConfigError) as info:
        load_fleet(path)
    return str(info.value).replace(str(path), "fleet.yaml")


def test_valid_fleet_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(BASE)
    fleet = load_fleet(path)
    assert [d.id for d in fleet.devices] == ["cam-1", "cam-2", "gpu-1"]
    assert fleet.defaults.cut == "b" and fleet.defaults.bits == 4 and fleet.defaults.batch == 1
    assert fleet.cut_for(fleet.devices[0]) == "b"
    assert fleet.image_for(fleet.devices[2]).name == "splitinfer-tail:latest"


def test_bad_role_names_file_field_and_choices(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE.replace("role: tail", "role: hed"))
    assert message == "fleet.yaml: devices[2].role: expected 'head' or 'tail', got 'hed'"


def test_duplicate_id_names_both_entries(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE.replace("id: gpu-1", "id: cam-1"))
    assert message == "fleet.yaml: devices[2].id: duplicate id 'cam-1' (already used by devices[0]); ids must be unique"


def test_unknown_cut(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE.replace('source: "0"}', 'source: "0", cut: e}'))
    assert message == ("fleet.yaml: devices[0].cut: expected a, b, c, d, auto, local, offload or a layer index ≥ 1, "
                       "got 'e'")
    message = _load(tmp_path, BASE + "defaults: {cut: 0}\n")
    assert message == "fleet.yaml: defaults.cut: expected a layer index ≥ 1, got 0"


def test_cut_values() -> None:
    assert parse_cut("B") == "b"
    assert parse_cut("11") == 11
    assert parse_cut(4) == 4
    assert parse_cut("auto") == "auto"
    with pytest.raises(ValueError):
        parse_cut(True)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("defaults:", "defaults: {bits: 9}\n"),
            "defaults.bits: expected 2..8 (quantized) or 16/32 (passthrough), got 9",
        ),
        (("fleet: traffic-a", "fleet: traffic/a"), "fleet: fleet name 'traffic/a' must be 1-63 characters"),
        (("id: cam-1", "id: cam+1"), "devices[0].id: id 'cam+1' must be 1-63 characters"),
        (('docker: "tcp://gpu-01:2376"', 'docker: "http://gpu-01"'), "devices[2].docker: expected unix://PATH"),
        (("gpus: all", "gpus: some"), "devices[2].gpus: expected 'all' or a GPU count ≥ 1, got 'some'"),
        (("gpus: all", "gpus: all, source: x"), "devices[2].source: only heads have a source"),
        (('source: "0"}', "}"), "devices[0].source: a head needs a source"),
        (("runtime: nvidia", "runtime: nvidia, gpus: 1"), "devices[1].gpus: use runtime: nvidia (Jetson) or gpus"),
        (("role: tail", "rol: tail"), "devices[2].rol: unknown field 'rol'; did you mean 'role'?"),
        (('url: "mqtt://10.0.0.2:1883"', 'url: "10.0.0.2"'), "broker.url: expected mqtt://host:port"),
    ],
)
def test_messages(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    text = BASE.replace(old, new, 1) if old in BASE else BASE + new
    assert any(line.startswith("fleet.yaml: " + expected) for line in _load(tmp_path, text).splitlines())


def test_missing_required_field(tmp_path: Path) -> None:
    assert _load(tmp_path, BASE.replace("broker:", "brokers:")).splitlines()[0] == (
        "fleet.yaml: broker: required field is missing"
    )


def test_several_problems_one_per_line(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE.replace("role: tail", "role: hed").replace("id: cam-1", "id: cam 1"))
    assert message.splitlines() == [
        "fleet.yaml: devices[0].id: id 'cam 1' must be 1-63 characters of letters, digits, '-', '_' or '.', starting "
        "with a letter or digit (it becomes part of MQTT topics and container names)",
        "fleet.yaml: devices[2].role: expected 'head' or 'tail', got 'hed'",
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FleetConfigError, match=r"fleet.yaml: file not found; pass -f/--file"):
        load_fleet(tmp_path / "fleet.yaml")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE + "  - {id: x, role: head\n")
    assert message.startswith("fleet.yaml: line 8, column 1: invalid YAML:")


def test_duplicate_yaml_key_is_a_syntax_error(tmp_path: Path) -> None:
    message = _load(tmp_path, BASE + "fleet: other\n")
    assert "line 7" in message and "invalid YAML" in message


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    assert _load(tmp_path, "- a\n- b\n") == "fleet.yaml: expected a mapping at the top (fleet:, broker:, devices:)"


def test_example_fleet_at_repo_root_is_valid() -> None:
    fleet = load_fleet(Path(__file__).parents[2] / "fleet.yaml")
    assert {d.role for d in fleet.devices} == {"head", "tail"}


def test_torch_device_and_half_per_device_and_in_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(BASE.replace("runtime: nvidia}", "runtime: nvidia, device: CUDA}")
                    .replace("gpus: all}", "gpus: all, half: true}"))
    fleet = load_fleet(path)
    assert [fleet.device_for(d) for d in fleet.devices] == ["auto", "cuda", "auto"]
    assert [fleet.half_for(d) for d in fleet.devices] == [False, False, True]
    path.write_text(BASE + "defaults: {device: cpu}\n")
    cpu_fleet = load_fleet(path)
    assert cpu_fleet.device_for(cpu_fleet.devices[2]) == "cpu"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('source: "0"}', 'source: "0", device: gpu}'),
         "devices[0].device: expected auto, cpu, cuda or cuda:N (the torch device the node runs on), got 'gpu'"),
        (('source: "0"}', 'source: "0", device: cuda}'),
         "devices[0].device: cuda (from device) needs the GPU passed into the container: add runtime: nvidia "
         "(Jetson) or gpus: all (x86 with the NVIDIA Container Toolkit), or use auto"),
        (("devices:", "defaults: {device: 'cuda:1'}\ndevices:"),
         "devices[0].device: cuda:1 (from defaults.device) needs the GPU passed into the container"),
        (('source: "0"}', 'source: "0", half: true}'),
         "devices[0].half: half precision runs on the GPU: give the device runtime: nvidia (Jetson) or gpus (x86)"),
        (("gpus: all}", "gpus: all, device: cpu, half: true}"), "devices[2].half: half precision runs on the GPU"),
        (('source: "0"}', 'source: "csi://0"}'),
         "devices[0].runtime: a csi:// camera is read through JetPack's camera stack, which the nvidia runtime "
         "mounts into the container: add runtime: nvidia"),
    ],
)
def test_accelerator_mistakes_say_how_to_fix_them(tmp_path: Path, change: tuple, expected: str) -> None:
    message = _load(tmp_path, BASE.replace(*change))
    assert message.startswith(f"fleet.yaml: {expected}"), message
