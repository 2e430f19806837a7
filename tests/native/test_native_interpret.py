"""The whole step model on the native kernels == the tflite-micro interpreter, bit for bit, and
the scratch-buffer plan it runs on is sound."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from native_models import BUILT, clip_frames

from kws.errors import KwsError
from kws.export.tflm import TflmStepModel
from kws.native.interpret import MemoryPlan, NativeReference

CLIPS = 20


def _assert_same_clips(native: NativeReference, tflm: TflmStepModel, seed: int) -> np.ndarray:
    frames = clip_frames(tflm.io, CLIPS, seed)
    expected = tflm.run_clips(frames)
    got = native.run_clips(frames)
    assert got.dtype == np.int8 and got.shape == expected.shape
    mismatches = int(np.count_nonzero(got != expected))
    assert mismatches == 0, f"{mismatches} of {expected.size} logits differ"
    assert len(np.unique(expected)) > 10  # the clips really lead to different results
    return expected


def _independent_overlap_check(plan: MemoryPlan) -> None:
    """Byte-level re-check of the plan, written without MemoryPlan's own logic."""
    for a in plan.placements.values():
        for b in plan.placements.values():
            if a.tensor >= b.tensor or not (a.first <= b.last and b.first <= a.last):
                continue
            if plan.root(a.tensor) == plan.root(b.tensor):
                continue  # views of the same bytes (aliased SPLIT/STRIDED_SLICE outputs)
            disjoint = a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset
            assert disjoint, (a, b)


# --- (a) the trained bundle, when this checkout has one --------------------------------------


def test_default_run_steps_equal_tflm(default_model, record_property):
    native, tflm = NativeReference(default_model), TflmStepModel(default_model)
    rng = np.random.default_rng(0)
    for _ in range(300):
        frame = rng.integers(-128, 128, native.frame_size, dtype=np.int8)
        state = rng.integers(-128, 128, native.state_size, dtype=np.int8)
        got, expected = native.step(frame, state), tflm.step(frame, state)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    _assert_same_clips(native, tflm, seed=1)
    plan = native.memory_plan()
    record_property("scratch_bytes", plan.total_bytes)
    print(f"runs/default: scratch {plan.total_bytes} B (aliased), "
          f"{NativeReference(default_model, alias=False).scratch_bytes} B (copies); "
          f"TFLM arena {tflm.arena_used_bytes} B")


def test_default_run_without_aliasing(default_model):
    _assert_same_clips(NativeReference(default_model, alias=False), TflmStepModel(default_model),
                       seed=2)


# --- (b) random-weight models built by the project's export path -----------------------------


@pytest.mark.parametrize("units", [16, 64, 128])
@pytest.mark.parametrize("labels", [10, 12])
def test_built_models_equal_tflm(build_model, units, labels, record_property):
    data = build_model(units, labels)
    native, tflm = NativeReference(data), TflmStepModel(data)
    _assert_same_clips(native, tflm, seed=units + labels)
    plan = native.memory_plan()
    _independent_overlap_check(plan)
    record_property("scratch_bytes", plan.total_bytes)
    print(f"GRU-{units} x {labels} labels: scratch {plan.total_bytes} B")


@pytest.mark.parametrize("name", ["H16x2-C12", "H32-C10-per-tensor"])
def test_two_layer_and_per_tensor_models_equal_tflm(build_model, name):
    data = build_model(*BUILT[name])
    for alias in (True, False):
        _assert_same_clips(NativeReference(data, alias=alias), TflmStepModel(data), seed=3)


def test_single_steps_equal_tflm_on_random_states(build_model):
    data = build_model(64, 12)
    native, tflm = NativeReference(data), TflmStepModel(data)
    rng = np.random.default_rng(4)
    for _ in range(200):
        frame = rng.integers(-128, 128, native.frame_size, dtype=np.int8)
        state = rng.integers(-128, 128, native.state_size, dtype=np.int8)
        for got, expected in zip(native.step(frame, state), tflm.step(frame, state)):
            assert np.array_equal(got, expected)


# --- the memory plan ---------------------------------------------------------------------------


@pytest.mark.parametrize("alias", [True, False])
def test_plan_never_overlaps_live_tensors(zoo, alias):
    for name, data in zoo.items():
        native = NativeReference(data, alias=alias)
        plan = native.memory_plan()
        assert plan.conflicts() == []
        _independent_overlap_check(plan)
        graph = native.graph
        variable = {t.index for t in graph.tensors if not t.is_constant}
        assert set(plan.placements) == variable  # every non-constant tensor has a slot
        assert plan.lower_bound <= plan.total_bytes <= sum(graph.tensor(t).nbytes
                                                           for t in variable) + 16 * len(variable)
        assert plan.total_bytes % plan.alignment == 0
        for p in plan.placements.values():
            if p.alias_of is None:
                assert p.offset % 16 == 0
        print(f"{name}: scratch {plan.total_bytes} B (alias={alias}), live peak "
              f"{plan.lower_bound} B")


def test_aliasing_removes_every_split_and_slice_of_the_gru(build_model):
    native = NativeReference(build_model(64, 12))
    skipped = {native.graph.ops[i].name for i in native._skip}
    assert skipped == {"SPLIT", "STRIDED_SLICE"}
    assert all(op.name not in skipped or op.index in native._skip for op in native.graph.ops)


def test_a_wrong_plan_is_caught(build_model):
    """Move one intermediate onto bytes another live tensor uses: the plan check refuses it, and
    running on it anyway (the check bypassed) no longer matches TFLM."""
    data = build_model(16, 10)
    native, tflm = NativeReference(data), TflmStepModel(data)
    plan = native.plan
    gates = native.graph.ops[0].outputs[0]  # the input-gates FULLY_CONNECTED output
    victim = next(t for t, p in plan.placements.items()
                  if p.alias_of is None and t != gates and p.live_with(plan.placements[gates])
                  and t not in native.graph.inputs)
    moved = dict(plan.placements)
    moved[victim] = dataclasses.replace(moved[victim], offset=plan.placements[gates].offset)
    broken = dataclasses.replace(plan, placements=moved)
    with pytest.raises(KwsError, match="overlaps live tensors"):
        broken.check()
    native.plan = broken
    native._slots = {t: (p.offset, p.end) for t, p in moved.items()}
    frames = clip_frames(tflm.io, CLIPS, 5)
    assert np.count_nonzero(native.run_clips(frames) != tflm.run_clips(frames)) > 0


def test_input_checks(build_model):
    native = NativeReference(build_model(16, 10))
    with pytest.raises(KwsError, match="int8"):
        native.run_clips(np.zeros((1, 49, native.frame_size), np.float32))
    with pytest.raises(KwsError, match="shape"):
        native.run_clips(np.zeros((1, 49, native.frame_size + 1), np.int8))
    with pytest.raises(KwsError, match="state must have shape"):
        native.step(np.zeros(native.frame_size, np.int8), np.zeros(3, np.int8))
    assert native.run_clip(np.zeros((49, native.frame_size), np.int8)).shape == (native.labels,)
