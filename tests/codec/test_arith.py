"""The range coder and centred quantizer of wire format 2: round trips, and the C module against its pure-Python twin
(the same bytes, symbols and values, on random and on feature-like tensors)."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splitinfer import CodecError
from splitinfer.codec import arith

NATIVE = arith.native


def python_path(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` run on the pure-Python twin."""
    saved, arith.native = arith.native, None
    try:
        return fn(*args)
    finally:
        arith.native = saved


needs_native = pytest.mark.skipif(NATIVE is None, reason=arith.status())


def sparse(shape: tuple, density: float, scale: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(-scale, scale + 1, size=shape)
    return (values * (rng.random(shape) < density)).astype(np.int16)


def feature_like(seed: int = 0) -> np.ndarray:
    """Symbols as the scheme makes them: whole channels and rows of zeros, blobs of small values, a few large."""
    rng = np.random.default_rng(seed)
    q = np.zeros((24, 20, 20), dtype=np.int16)
    for c in range(0, 24, 3):
        y, x = rng.integers(0, 16, size=2)
        q[c, y : y + 5, x : x + 4] = rng.integers(-3, 4, size=(min(5, 20 - y), min(4, 20 - x)))
    q[5, 7, 7] = 900
    q[6, 0, 19] = -arith.QMAX
    return q


def test_round_trip_of_feature_like_symbols() -> None:
    q = feature_like()
    data = arith.encode(q)
    assert np.array_equal(arith.decode(data, q.shape), q)
    assert len(data) < q.size // 4  # mostly zeros: far under a bit a value


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 7), (2, 5, 1), (4, 3, 3)])
def test_round_trip_of_small_shapes(shape: tuple) -> None:
    for seed, density in enumerate((0.0, 0.3, 1.0)):
        q = sparse(shape, density, 40, seed)
        assert np.array_equal(arith.decode(arith.encode(q), shape), q)


def test_extreme_symbols() -> None:
    q = np.array([[[arith.SYMBOL_MAX, -arith.SYMBOL_MAX, 1, -1, 14, 15, 16, 0]]], dtype=np.int16)
    assert np.array_equal(arith.decode(arith.encode(q), q.shape), q)
    with pytest.raises(CodecError, match="-32768"):
        arith.encode(np.array([[[-32768]]], dtype=np.int16))


def test_all_zero_tensors_cost_a_few_bytes() -> None:
    q = np.zeros((896, 40, 40), dtype=np.int16)
    assert len(arith.encode(q)) < 16


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    density=st.floats(0, 1),
    scale=st.sampled_from([1, 3, 40, 20000]),
    seed=st.integers(0, 2**16),
)
def test_round_trip_of_random_symbols(shape: tuple, density: float, scale: int, seed: int) -> None:
    q = sparse(shape, density, scale, seed)
    data = arith.encode(q)
    assert np.array_equal(arith.decode(data, shape), q)
    if NATIVE is not None:
        assert python_path(arith.encode, q) == data
        assert np.array_equal(python_path(arith.decode, data, shape), q)


@needs_native
@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_write_the_same_bytes(seed: int) -> None:
    q = feature_like(seed) if seed % 2 else sparse((6, 9, 11), 0.2, 60, seed)
    data = arith.encode(q)
    assert python_path(arith.encode, q) == data
    assert np.array_equal(python_path(arith.decode, data, q.shape), q)


@needs_native
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64), shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)))
def test_c_and_python_agree_on_garbage(data: bytes, shape: tuple) -> None:
    """Every input gets the same verdict both ways: the same symbols, or a CodecError (never anything else)."""
    outcomes = []
    for decode in (arith.decode, lambda d, s: python_path(arith.decode, d, s)):  # at the default limit
        try:
            outcomes.append(decode(data, shape).tobytes())
        except CodecError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def test_decode_limit_refuses_larger_symbols() -> None:
    q = np.array([[[0, 5, -arith.QMAX - 1]]], dtype=np.int16)
    data = arith.encode(q)
    assert np.array_equal(arith.decode(data, q.shape), q)
    for decode in (arith.decode, lambda *a, **k: python_path(lambda: arith.decode(*a, **k))):
        with pytest.raises(CodecError, match="magnitude over"):
            decode(data, q.shape, limit=arith.QMAX)


def test_streams_are_exact_in_length() -> None:
    q = feature_like(3)
    data = arith.encode(q)
    with pytest.raises(CodecError, match="stray bytes"):
        arith.decode(data + b"\x00", q.shape)
    with pytest.raises(CodecError, match=r"truncated|ends before|shorter"):
        arith.decode(data[:-1], q.shape)
    with pytest.raises(CodecError, match="first byte"):
        arith.decode(b"\x01" + data[1:], q.shape)


def test_garbage_work_is_bounded_by_the_shape() -> None:
    """A large shape with a few garbage bytes stops early: it runs out of input a few bytes past the end."""
    with pytest.raises(CodecError):
        arith.decode(b"\x00\xff\xff\xff\xff\xff\xff", (896, 80, 80))


# ---------------------------------------------------------------------------------------- quantizer


def test_quantize_rounds_half_up_and_clamps() -> None:
    x = np.array([[0.49, 0.5, 1.5, -0.5, -0.51, -1.5, 1e9, -1e9]], dtype=np.float32)
    q = arith.quantize(x, np.zeros(1, np.float32), np.ones(1, np.float32))
    assert q.tolist() == [[0, 1, 2, 0, -1, -1, arith.QMAX, -arith.QMAX]]


def test_quantize_refuses_nan_and_infinity() -> None:
    for bad in (float("nan"), float("inf")):
        x = np.zeros((2, 5), dtype=np.float32)
        x[1, 3] = bad
        with pytest.raises(CodecError, match="NaN"):
            arith.quantize(x, np.zeros(2, np.float32), np.ones(2, np.float32))


def test_quantize_matches_torch_and_the_python_twin() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 300)) * 4).astype(np.float32)
    mean = rng.standard_normal(64).astype(np.float32)
    inv = (rng.random(64) * 5).astype(np.float32)
    inv[3] = 0.0  # a channel never sent
    q = arith.quantize(x, mean, inv)
    t = torch.floor((torch.from_numpy(x) - torch.from_numpy(mean)[:, None]) * torch.from_numpy(inv)[:, None] + 0.5)
    assert np.array_equal(q, t.clamp(-arith.QMAX, arith.QMAX).to(torch.int16).numpy())
    assert np.array_equal(python_path(arith.quantize, x, mean, inv), q)
    assert not q[3].any()
    step = (1.0 / np.maximum(inv, 1e-30)).astype(np.float32)
    step[3] = 0.0
    values = arith.dequantize(q, mean, step)
    expected = torch.from_numpy(q).float() * torch.from_numpy(step)[:, None] + torch.from_numpy(mean)[:, None]
    assert np.array_equal(values.view(np.uint32), expected.numpy().view(np.uint32))
    assert np.array_equal(python_path(arith.dequantize, q, mean, step).view(np.uint32), values.view(np.uint32))


def test_status_names_the_path() -> None:
    assert arith.status().startswith("C range coder" if NATIVE is not None else "pure-Python")


def test_env_switch_forces_the_python_twin() -> None:
    import subprocess
    import sys

    import splitinfer

    code = "from splitinfer.codec import arith; print(arith.native is None, arith.status())"
    src = os.path.dirname(os.path.dirname(splitinfer.__file__))
    env = dict(os.environ, SPLITINFER_ARITH="0", PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.startswith("True pure-Python")
