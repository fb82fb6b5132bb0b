"""workers/: round trips, determinism, corruption detection, faults, malformed results, backend."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import types

import numpy as np
import pytest

import workers
from workers import backend
from workers.kinds import hashsearch, montecarlo

SIZES = {
    "matmul": (1, 7, 64),
    "fft": (1, 97, 1000, 4096),
    "sort": (1, 2, 1000, 4096),
    "montecarlo": (1, 1000, 200_000),
    "hashsearch": (1, 64, 4096),
}


def test_kinds_and_registry() -> None:
    assert workers.KINDS == ("matmul", "fft", "sort", "montecarlo", "hashsearch")


@pytest.mark.parametrize("kind", workers.KINDS)
def test_round_trip(kind: str) -> None:
    for size in SIZES[kind]:
        for seed in (0, 1, 12345):
            spec = workers.TaskSpec(kind, size, seed)
            inputs = workers.make_inputs(spec)
            result = workers.execute(spec, inputs)
            assert workers.verify(spec, result, inputs), (kind, size, seed)
            assert workers.verify(spec, result)  # inputs regenerated from the seed


def test_natural_shapes() -> None:
    a, b = workers.make_inputs(workers.TaskSpec("matmul", 5, 2))
    c = workers.execute(workers.TaskSpec("matmul", 5, 2))
    np.testing.assert_allclose(c, a @ b)
    x = workers.make_inputs(workers.TaskSpec("fft", 33, 2))
    np.testing.assert_allclose(workers.execute(workers.TaskSpec("fft", 33, 2)), np.fft.fft(x))
    v = workers.make_inputs(workers.TaskSpec("sort", 50, 2))
    np.testing.assert_array_equal(workers.execute(workers.TaskSpec("sort", 50, 2)), np.sort(v))
    mc = workers.execute(workers.TaskSpec("montecarlo", 300_000, 2))
    assert abs(mc.estimate(300_000) - np.pi) < 0.02


@pytest.mark.parametrize("kind", workers.KINDS)
def test_deterministic(kind: str) -> None:
    spec = workers.TaskSpec(kind, SIZES[kind][-1], 7)
    r1, r2 = workers.execute(spec), workers.execute(spec)
    if isinstance(r1, np.ndarray):
        np.testing.assert_array_equal(r1, r2)
    elif isinstance(r1, montecarlo.Result):
        np.testing.assert_array_equal(r1.partials, r2.partials)
        assert r1.total == r2.total
    else:
        assert r1 == r2
    other = workers.execute(dataclasses.replace(spec, seed=8))
    assert not workers.verify(spec, other) or spec.size == 1


@pytest.mark.parametrize(("kind", "size"), [("matmul", 48), ("fft", 1024), ("sort", 1024)])
def test_single_element_corruption_caught(kind: str, size: int) -> None:
    spec = workers.TaskSpec(kind, size, 3)
    inputs = workers.make_inputs(spec)
    good = workers.execute(spec, inputs)
    rms = float(np.sqrt(np.mean(np.abs(good) ** 2)))
    g = np.random.default_rng(99)
    for trial in range(200):
        bad = good.copy()
        idx = tuple(int(g.integers(s)) for s in bad.shape)
        mode = trial % 5
        if mode == 0:
            bad[idx] = np.nan
        elif mode == 1:
            bad[idx] = np.inf * (1 if g.random() < 0.5 else -1)
        elif kind == "sort":  # the smallest possible change: one ulp
            bad[idx] = np.nextafter(bad[idx], np.inf if mode == 2 else -np.inf)
        else:  # 1e-3 of the RMS element, random sign (and phase for complex)
            delta = 1e-3 * rms * (1 if g.random() < 0.5 else -1)
            bad[idx] += delta * (np.exp(2j * np.pi * g.random()) if kind == "fft" else 1)
        assert not workers.verify(spec, bad, inputs), (kind, trial, idx)


def test_sort_swap_and_multiset_changes_caught() -> None:
    spec = workers.TaskSpec("sort", 1000, 4)
    good = workers.execute(spec)
    swapped = good.copy()
    swapped[[10, 11]] = swapped[[11, 10]]
    assert not workers.verify(spec, swapped)
    duplicated = good.copy()
    duplicated[500] = duplicated[499]  # still sorted, multiset differs
    assert not workers.verify(spec, duplicated)


def test_montecarlo_corruption_caught() -> None:
    spec = workers.TaskSpec("montecarlo", 10 * montecarlo.CHUNK, 5)
    good = workers.execute(spec)
    for c in range(good.partials.size):
        partials = good.partials.copy()
        partials[c] += 1
        assert not workers.verify(spec, montecarlo.Result(partials, good.total))
    assert not workers.verify(spec, montecarlo.Result(good.partials, good.total + 1))
    # A consistent forgery of every chunk is caught by the sampled recounts.
    forged = good.partials + 1
    assert not workers.verify(spec, montecarlo.Result(forged, int(forged.sum())))


def test_hashsearch_corruption_caught() -> None:
    spec = workers.TaskSpec("hashsearch", 4096, 6)
    good = workers.execute(spec)
    assert not workers.verify(spec, hashsearch.Result(good.nonce + 1, good.digest))
    for i in range(32):
        d = bytearray(good.digest)
        d[i] ^= 1
        assert not workers.verify(spec, hashsearch.Result(good.nonce, bytes(d)))
    # A nonce with its true digest is still rejected when above the target.
    puzzle = workers.make_inputs(spec)
    above = next(
        n for n in range(4096) if int.from_bytes(hashsearch.digest(puzzle, n)) >= puzzle.target
    )
    assert not workers.verify(spec, hashsearch.Result(above, hashsearch.digest(puzzle, above)))


@pytest.mark.parametrize("kind", workers.KINDS)
def test_faulty_caught_and_deterministic(kind: str) -> None:
    for size in SIZES[kind]:
        for seed in (0, 1, 2):
            spec = workers.TaskSpec(kind, size, seed)
            assert not workers.verify(spec, workers.execute(spec, faulty=True)), (size, seed)
    spec = workers.TaskSpec(kind, SIZES[kind][-1], 0)
    a, b = workers.execute(spec, faulty=True), workers.execute(spec, faulty=True)
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)


def test_fault_config_rate_and_late() -> None:
    specs = [workers.TaskSpec("sort", 64, s) for s in range(200)]
    never = workers.FaultConfig(rate=0.0)
    always = workers.FaultConfig(rate=1.0)
    assert all(workers.verify(s, workers.execute(s, fault=never)) for s in specs[:20])
    assert not any(workers.verify(s, workers.execute(s, fault=always)) for s in specs[:20])
    half = workers.FaultConfig(rate=0.5, seed=3)
    wrong = [not workers.verify(s, workers.execute(s, fault=half)) for s in specs]
    assert 60 < sum(wrong) < 140
    assert wrong == [not workers.verify(s, workers.execute(s, fault=half)) for s in specs]
    late = workers.FaultConfig(rate=1.0, late_s=0.05)
    start = time.perf_counter()
    assert not workers.verify(specs[0], workers.execute(specs[0], fault=late))
    assert time.perf_counter() - start >= 0.05
    start = time.perf_counter()
    workers.execute(specs[0], fault=workers.FaultConfig(rate=0.0, late_s=5.0))
    assert time.perf_counter() - start < 1.0  # only faulty executions are late


MALFORMED = [None, 3, "x", [1.0, 2.0], object(), np.zeros(0), np.zeros((2, 2, 2))]


@pytest.mark.parametrize("kind", workers.KINDS)
def test_malformed_results_rejected(kind: str) -> None:
    spec = workers.TaskSpec(kind, 16, 1)
    good = workers.execute(spec)
    bad: list[object] = list(MALFORMED)
    if isinstance(good, np.ndarray):
        bad += [
            good.real.astype(np.float32),
            good.astype(np.complex64),
            good.reshape(1, -1),
            good[:-1],
            np.concatenate([good.reshape(-1), good.reshape(-1)[:1]]),
            good.real if np.iscomplexobj(good) else good.astype(np.complex128),
            good.tolist(),
        ]
    elif isinstance(good, montecarlo.Result):
        bad += [
            montecarlo.Result(good.partials.astype(np.float64), good.total),
            montecarlo.Result(good.partials[:0], 0),
            montecarlo.Result(good.partials.tolist(), good.total),  # type: ignore[arg-type]
            montecarlo.Result(good.partials, "1"),  # type: ignore[arg-type]
            (good.partials, good.total),
        ]
    else:
        bad += [
            hashsearch.Result(-1, good.digest),
            hashsearch.Result(16, good.digest),
            hashsearch.Result(str(good.nonce), good.digest),  # type: ignore[arg-type]
            hashsearch.Result(good.nonce, good.digest.hex()),  # type: ignore[arg-type]
            hashsearch.Result(True, good.digest),
            (good.nonce, good.digest),
        ]
    for result in bad:
        assert workers.verify(spec, result) is False, (kind, type(result))


def test_task_spec_validation() -> None:
    with pytest.raises(ValueError, match=r"^kind: "):
        workers.TaskSpec("nope", 4, 0)
    for size in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"^size: "):
            workers.TaskSpec("sort", size, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^seed: "):
        workers.TaskSpec("sort", 4, -1)
    with pytest.raises(ValueError, match=r"^rate: "):
        workers.FaultConfig(rate=1.5)
    with pytest.raises(ValueError, match=r"^late_s: "):
        workers.FaultConfig(late_s=-1.0)
    spec = workers.TaskSpec("fft", 8, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.size = 9  # type: ignore[misc]


def _fake_cupy(available: object) -> types.ModuleType:
    def is_available() -> bool:
        if isinstance(available, Exception):
            raise available
        return bool(available)

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=is_available, runtime=types.SimpleNamespace(getDeviceCount=lambda: 0)
    )
    return fake


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (None, "not importable"),
        (_fake_cupy(RuntimeError("CUDA driver version is insufficient")), "probe failed"),
        (_fake_cupy(False), "no CUDA device"),
    ],
)
def test_backend_falls_back_to_numpy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, module: object, reason: str
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", module)
    caplog.set_level(logging.INFO, logger="workers")
    try:
        assert backend.get_xp(refresh=True) is np
        lines = [r.getMessage() for r in caplog.records if r.name == "workers"]
        assert len(lines) == 1 and "numpy" in lines[0] and reason in lines[0]
        backend.get_xp()  # cached: no second line
        assert len([r for r in caplog.records if r.name == "workers"]) == 1
        spec = workers.TaskSpec("matmul", 8, 0)
        assert workers.verify(spec, workers.execute(spec))
    finally:
        monkeypatch.undo()
        backend.get_xp(refresh=True)


def test_backend_picks_cupy_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(True))
    try:
        assert backend.get_xp(refresh=True).__name__ == "cupy"
    finally:
        monkeypatch.undo()
        backend.get_xp(refresh=True)


def test_to_numpy() -> None:
    a = np.arange(3)
    assert backend.to_numpy(a) is a
    assert isinstance(backend.to_numpy([1, 2]), np.ndarray)


def test_no_forbidden_imports() -> None:
    from pathlib import Path

    root = Path(workers.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for name in ("protocol", "cluster", "ray"):
            assert f"import {name}" not in text and f"from {name}" not in text, path
