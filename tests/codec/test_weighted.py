"""Wire format 2: a calibration table and a quality, encode → decode, delta coding, tables refused, version 1 kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest
import torch

from splitinfer import Codec, CodecError, FeatureSet, FrameMeta
from splitinfer.codec import CalibrationTable, arith
from splitinfer.codec import format as wire
from splitinfer.codec.settings import delta_for
from splitinfer.codec.weighted import _quantize, _quantize_on_device, coder_shape

from .conftest import make_features

DATA = Path(__file__).parent / "data"


def table_for(fs: FeatureSet, *, seed: int = 0, model: str = "c0ffee", dead: Sequence[int] = (0,)) -> CalibrationTable:
    """A table for ``fs``'s tensors: sensitivities over two decades (steps of ~0.03..0.3 at quality 50, as on a
    real model), channel 0 never sent."""
    rng = np.random.default_rng(seed)
    sens, means = [], []
    for t in fs.tensors:
        c = int(t.shape[1])
        s = 10.0 ** rng.uniform(-6, -4, size=c)
        s[[d for d in dead if d < c]] = 0.0
        sens.append(s)
        means.append(t.float().mean(dim=(0, *range(2, t.dim()))).numpy())
    return CalibrationTable(model=model, cut=fs.cut, imgsz=fs.input_shape[0], layers=fs.layers, sensitivity=sens,
                            mean=means, meta={"test": True})


def expected(fs: FeatureSet, table: CalibrationTable, quality: int) -> List[torch.Tensor]:
    """What decoding must give, computed here from the definition."""
    delta = float(np.float32(delta_for(quality)))
    out = []
    for t, mean, (step, inv) in zip(fs.tensors, table.mean, table.steps(delta)):
        shape = (t.shape[0], t.shape[1], -1)
        x = t.float().reshape(shape)
        q = torch.floor((x - torch.from_numpy(mean)[:, None]) * torch.from_numpy(inv)[:, None] + 0.5)
        q = q.clamp(-arith.QMAX, arith.QMAX)
        out.append((q * torch.from_numpy(step)[:, None] + torch.from_numpy(mean)[:, None]).reshape(t.shape))
    return out


@pytest.fixture
def fs() -> FeatureSet:
    return make_features()


@pytest.fixture
def table(fs: FeatureSet) -> CalibrationTable:
    return table_for(fs)


@pytest.mark.parametrize("quality", [1, 30, 50, 80, 100])
def test_round_trip_is_the_definition(fs: FeatureSet, table: CalibrationTable, quality: int) -> None:
    blob = Codec(table=table, quality=quality).encode(fs)
    assert blob[:5] == wire.MAGIC + bytes([wire.VERSION_WEIGHTED])
    out = Codec(table=table).decode(blob)
    assert out.layers == fs.layers and out.cut == fs.cut and out.model == fs.model and out.frames == fs.frames
    for got, want in zip(out.tensors, expected(fs, table, quality)):
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert torch.equal(got, want)


def test_channels_without_sensitivity_decode_to_their_mean(fs: FeatureSet, table: CalibrationTable) -> None:
    out = Codec(table=table).decode(Codec(table=table, quality=100).encode(fs))
    for t, mean in zip(out.tensors, table.mean):
        assert torch.all(t[:, 0] == float(mean[0]))


def test_quality_trades_bytes_for_error(fs: FeatureSet, table: CalibrationTable) -> None:
    sizes, errors = [], []
    for quality in (20, 50, 80):
        blob = Codec(table=table, quality=quality).encode(fs)
        out = Codec(table=table).decode(blob)
        sizes.append(len(blob))
        errors.append(sum(float((a - b).pow(2).mean()) for a, b in zip(out.tensors, fs.tensors)))
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]


def test_batch_half_precision_and_sources(table: CalibrationTable) -> None:
    fs = make_features(((3, 8, 16, 16), (3, 16, 8, 8)), dtype=torch.float16)
    table3 = table_for(fs)
    out = Codec(table=table3).decode(Codec(table=table3, quality=60).encode(fs))
    assert [t.dtype for t in out.tensors] == [torch.float16, torch.float16]
    assert [f.source for f in out.frames] == ["cam-1-0", "cam-1-1", "cam-1-2"]
    for got, want in zip(out.tensors, expected(fs, table3, 60)):
        assert torch.equal(got, want.to(torch.float16))


def test_device_path_gives_the_same_symbols(fs: FeatureSet, table: CalibrationTable) -> None:
    """The torch quantizer (what runs on a GPU; here on CPU tensors) equals the C/numpy one, symbol for symbol."""
    for t, mean, (_, inv) in zip(fs.tensors, table.mean, table.steps(delta_for(70))):
        reference = _quantize(t, mean, inv)
        batch = int(t.shape[0])
        on_device = _quantize_on_device(t, np.tile(mean, batch), np.tile(inv, batch), coder_shape(t.shape))
        assert np.array_equal(on_device, reference)


def test_decoder_without_the_table_says_which_it_needs(fs: FeatureSet, table: CalibrationTable) -> None:
    blob = Codec(table=table).encode(fs)
    with pytest.raises(CodecError, match=f"table {table.hexdigest[:16]}.*holds none"):
        Codec().decode(blob)


def test_decoder_with_another_table_refuses(fs: FeatureSet, table: CalibrationTable) -> None:
    blob = Codec(table=table).encode(fs)
    other = table_for(fs, seed=1)
    with pytest.raises(CodecError, match=f"encoded with calibration table {table.hexdigest[:16]}.*holds "
                                         f"{other.hexdigest[:16]}"):
        Codec(table=other).decode(blob)


def test_a_decoder_holding_several_tables_reads_each_blob_with_its_own() -> None:
    # a tail whose heads run two cuts: one decoder, both tables, keyframe state per source
    a, b = make_features(seed=1), make_features(((1, 8, 16, 16), (1, 16, 8, 8), (1, 4, 4, 4)), seed=2)
    ta, tb = table_for(a), table_for(b, seed=3)
    decoder = Codec(tables=[ta, tb])
    for fs, t in ((a, ta), (b, tb), (a, ta)):
        out = decoder.decode(Codec(table=t, quality=60).encode(fs))
        assert out.cut == fs.cut
        assert all(torch.equal(x, y) for x, y in zip(out.tensors, expected(fs, t, 60)))


def test_encoder_refuses_features_the_table_does_not_fit(fs: FeatureSet, table: CalibrationTable) -> None:
    cases = {
        "another model": table_for(fs, model="beef"),
        "input": CalibrationTable(model="c0ffee", cut=fs.cut, imgsz=32, layers=fs.layers,
                                  sensitivity=table.sensitivity, mean=table.mean),
        "cut": CalibrationTable(model="c0ffee", cut=fs.cut + 1, imgsz=64, layers=fs.layers,
                                sensitivity=table.sensitivity, mean=table.mean),
        "channels": CalibrationTable(model="c0ffee", cut=fs.cut, imgsz=64, layers=fs.layers,
                                     sensitivity=[table.sensitivity[0][:4], table.sensitivity[1]],
                                     mean=[table.mean[0][:4], table.mean[1]]),
    }
    for what, bad in cases.items():
        with pytest.raises(CodecError, match=what.split()[-1]):
            Codec(table=bad).encode(fs)


def test_table_from_a_file(tmp_path: Path, fs: FeatureSet, table: CalibrationTable) -> None:
    path = table.save(tmp_path / "t.npz")
    blob = Codec(table=str(path)).encode(fs)
    assert Codec(table=path).decode(blob).layers == fs.layers
    assert Codec(table=table).describe()["table"] == table.hexdigest


def test_settings_are_checked() -> None:
    for quality in (0, 101, 2.5, True):
        with pytest.raises(CodecError, match="quality"):
            Codec(quality=quality)


# ------------------------------------------------------------------------------------------------ delta coding


def static_clip(n: int, source: str = "cam-1") -> List[FeatureSet]:
    """A static scene: the same features plus a little noise each frame, and one region that moves."""
    base = make_features(seed=7)
    out = []
    gen = torch.Generator().manual_seed(8)
    for k in range(n):
        tensors = []
        for t in base.tensors:
            x = t + 0.02 * torch.randn(t.shape, generator=gen)
            x[:, :, k % 4, :] += 1.0
            tensors.append(x)
        frames = (FrameMeta(source=source, seq=k, timestamp=float(k), orig_shape=(480, 640), ratio=0.5),)
        out.append(FeatureSet(cut=base.cut, layers=base.layers, tensors=tuple(tensors), input_shape=(64, 64),
                              model=base.model, frames=frames))
    return out


def test_delta_frames_decode_exactly_and_cost_less() -> None:
    clip = static_clip(6)
    table = table_for(clip[0])
    enc, dec, intra = Codec(table=table, keyframe_interval=3), Codec(table=table), Codec(table=table)
    sizes = []
    for fs in clip:
        blob = enc.encode(fs)
        sizes.append(len(blob))
        got = dec.decode(blob)
        want = intra.decode(Codec(table=table).encode(fs))
        assert all(torch.equal(a, b) for a, b in zip(got.tensors, want.tensors))
    assert sizes[1] < sizes[0] and sizes[2] < sizes[0] and sizes[4] < sizes[3]


def test_a_changed_scene_is_sent_as_a_new_keyframe_not_a_costlier_delta() -> None:
    # the camera moved: differences from the old keyframe would cost more than the frame alone; the frame is sent
    # as a new keyframe, and the frames after it are deltas against that one
    still = static_clip(2)
    scene = make_features(seed=40)
    gen = torch.Generator().manual_seed(41)
    moved = []
    for k in range(3):
        tensors = tuple(t + 0.02 * k * torch.randn(t.shape, generator=gen) for t in scene.tensors)
        meta = replace(still[0].frames[0], seq=k + 2)
        moved.append(replace(scene, tensors=tensors, frames=(meta,)))
    table = table_for(still[0])
    enc, dec = Codec(table=table, keyframe_interval=10), Codec(table=table)
    sizes = []
    for fs in [*still, *moved]:
        blob, alone = enc.encode(fs), Codec(table=table).encode(fs)
        sizes.append((len(blob), len(alone)))
        got, want = dec.decode(blob), Codec(table=table).decode(alone)
        assert all(torch.equal(a, b) for a, b in zip(got.tensors, want.tensors))
    assert sizes[1][0] < sizes[1][1]  # the still scene: a delta
    assert sizes[2][0] == sizes[2][1]  # the new scene: a keyframe, as many bytes as the frame alone
    assert sizes[3][0] < sizes[3][1] and sizes[4][0] < sizes[4][1]  # deltas against the new keyframe


def panning_clip(n: int, shift: int) -> List[FeatureSet]:
    """A moving camera: smooth feature maps (as a real scene's are) seen through a window that slides ``shift``
    columns a frame, with fresh noise. Their differences are small numbers but noisy, which the range coder's
    neighbour contexts code worse than the smooth maps themselves."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(50)

    def smooth(channels: int, h: int, w: int, cell: int) -> torch.Tensor:
        coarse = torch.randn(1, channels, h // cell + 2, w // cell + 2, generator=gen)
        return F.silu(2 * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False))

    scene = [smooth(8, 16, 128, 8), smooth(16, 8, 64, 4)]
    out = []
    for k in range(n):
        tensors = []
        for t in scene:
            step, width = shift * t.shape[-1] // 128, t.shape[-1] // 4  # the coarser map moves fewer columns
            window = t[..., k * step : k * step + width]
            tensors.append(window + 0.02 * torch.randn(window.shape, generator=gen))
        meta = FrameMeta(source="cam-1", seq=k, timestamp=float(k), orig_shape=(480, 640), ratio=0.5)
        out.append(FeatureSet(cut=5, layers=(1, 3), tensors=tuple(tensors), input_shape=(64, 64), model="c0ffee",
                              frames=(meta,)))
    return out


@pytest.mark.parametrize("shift", [2, 4])
def test_a_moving_camera_never_costs_more_with_delta_frames_than_without(shift: int) -> None:
    """A delta that costs as much as its keyframe did is sent as a keyframe, so a pan never costs more than intra
    coding (at 4 columns a frame the cost estimate alone let deltas through that made the clip 2 % bigger)."""
    clip = panning_clip(12, shift)
    table = table_for(clip[0])
    intra = sum(len(Codec(table=table).encode(fs)) for fs in clip)
    enc, dec = Codec(table=table, keyframe_interval=30), Codec(table=table)
    total = 0
    for fs in clip:
        blob = enc.encode(fs)
        total += len(blob)
        want = Codec(table=table).decode(Codec(table=table).encode(fs))
        assert all(torch.equal(a, b) for a, b in zip(dec.decode(blob).tensors, want.tensors))
    assert total <= intra


def test_lost_keyframe_refuses_deltas_until_the_next() -> None:
    clip = static_clip(5)
    table = table_for(clip[0])
    enc, dec = Codec(table=table, keyframe_interval=3), Codec(table=table)
    blobs = [enc.encode(fs) for fs in clip]
    with pytest.raises(CodecError, match="refers to keyframe 0"):
        dec.decode(blobs[1])
    dec.decode(blobs[3])
    dec.decode(blobs[4])


def test_delta_of_another_quality_is_refused() -> None:
    clip = static_clip(2)
    table = table_for(clip[0])
    key = Codec(table=table, keyframe_interval=3, quality=40).encode(clip[0])
    enc = Codec(table=table, keyframe_interval=3, quality=60)
    enc.encode(clip[0])
    delta = enc.encode(clip[1])
    dec = Codec(table=table)
    dec.decode(key)  # keyframe 0 at another step: the delta (seq 1, ref 0) must not be rebuilt on it
    with pytest.raises(CodecError, match="does not match its keyframe"):
        dec.decode(delta)


# ------------------------------------------------------------------------------------------------ version 1


@pytest.mark.parametrize("name", ["bits3", "bits2_batch", "fp16_tensor", "float32", "key", "delta"])
def test_version_1_blobs_still_decode(name: str, fs: FeatureSet, table: CalibrationTable) -> None:
    """Blobs written by the version-1 encoder before version 2 existed decode to the same values, with or
    without a table in the decoder."""
    golden = np.load(DATA / "v1_blobs.npz")
    decoders = [Codec(), Codec(table=table)]
    for dec in decoders:
        if name == "delta":
            dec.decode(golden["key_blob"].tobytes())
        out = dec.decode(golden[f"{name}_blob"].tobytes())
        for i, t in enumerate(out.tensors):
            assert np.array_equal(t.float().numpy(), golden[f"{name}_t{i}"])


def test_without_a_table_the_encoder_still_writes_version_1(fs: FeatureSet) -> None:
    blob = Codec(bits=3).encode(fs)
    assert blob[4] == wire.VERSION
    golden = np.load(DATA / "v1_blobs.npz")
    assert blob == golden["bits3_blob"].tobytes()
