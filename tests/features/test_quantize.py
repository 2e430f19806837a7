"""The int8 quantizer: Python and C agree on every edge (rounding ties, clamping, extremes)."""

import numpy as np
import pytest

from kws.features import reference

EDGE_SCALE = 0.1


def edge_values(scale: float) -> np.ndarray:
    ties = (np.arange(-140, 141) + 0.5) * scale  # exactly between two steps (in float64)
    near = np.nextafter(np.float32(ties), np.float32(np.inf))
    below = np.nextafter(np.float32(ties), np.float32(-np.inf))
    extremes = np.array([0.0, -0.0, 1e30, -1e30, 1e-30, 0.49999997, -0.49999997], np.float32)
    return np.concatenate([np.float32(ties), near, below, extremes]).astype(np.float32)


@pytest.mark.parametrize("scale, zp", [(EDGE_SCALE, 0), (0.0957, 64), (1.0, -128), (0.25, 127), (1.0, 0)])
def test_python_and_c_quantizers_are_identical(cfeat, scale, zp):
    v = edge_values(scale)
    v = v[: len(v) // 40 * 40]
    py = reference.quantize(v, scale, zp)
    c = cfeat.quantize(v.reshape(-1, 40), scale, zp).ravel()
    assert np.array_equal(py, c)


def test_rounding_is_half_away_from_zero_and_clamped():
    q = reference.quantize(np.array([0.5, -0.5, 1.5, -1.5, 2.5, 0.49999997, 1e9, -1e9]), 1.0, 0)
    assert q.tolist() == [1, -1, 2, -2, 3, 0, 127, -128]
    assert reference.quantize(np.array([0.0]), 1.0, 127).tolist() == [127]
    assert reference.quantize(np.array([-1.0]), 1.0, -128).tolist() == [-128]


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_is_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        reference.quantize(np.zeros(3), scale, 0)


def test_range_quantization_covers_the_feature_range():
    from kws.features.params import FeatureParams

    lo, hi = reference.full_scale_range(FeatureParams())
    scale, zp = reference.range_quantization(lo, hi)
    q = reference.quantize(np.array([lo, hi]), scale, zp)
    assert q.tolist() == [-128, 127]
