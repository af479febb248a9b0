"""Where a node finds the model its assignment names."""

from __future__ import annotations

from pathlib import Path

from splitinfer.node.models import resolve_model_path


def test_the_assigned_path_is_looked_up_under_the_model_folder(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "best.pt").write_bytes(b"x")
    folder = str(tmp_path)
    assert resolve_model_path("models/best.pt", folder) == str(tmp_path / "models" / "best.pt")


def test_deploy_copies_by_file_name_so_the_operators_path_does_not_matter(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"x")
    folder = str(tmp_path)
    assert resolve_model_path("/home/op/runs/best.pt", folder) == str(tmp_path / "best.pt")
    assert resolve_model_path("runs/best.pt", folder) == str(tmp_path / "best.pt")


def test_an_absolute_path_that_exists_here_wins(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "best.pt").write_bytes(b"here")
    (tmp_path / "best.pt").write_bytes(b"copied")
    assert resolve_model_path(str(tmp_path / "a" / "best.pt"), str(tmp_path)) == str(tmp_path / "a" / "best.pt")


def test_names_not_found_stay_as_given(tmp_path: Path) -> None:
    assert resolve_model_path("yolo11n.yaml", str(tmp_path)) == "yolo11n.yaml"
    assert resolve_model_path("yolo11n.yaml", "") == "yolo11n.yaml"
