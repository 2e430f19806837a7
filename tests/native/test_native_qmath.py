"""The fixed-point primitives on hand-checked values (what TFLite's C++ returns for them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kws.errors import KwsError
from kws.native import qmath


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (0.1, (1717986918, -3)),
    (3.0, (3 << 29, 2)),
    (0.0, (0, 0)),
    (2.0 ** -40, (0, 0)),  # below 2^-31 TFLite flushes to zero
    (1.0 - 2.0 ** -40, (1 << 30, 1)),  # mantissa rounds up to 2^31: halved, shift + 1
])
def test_quantize_multiplier(real, expected):
    assert qmath.quantize_multiplier(real) == expected


def test_quantize_multiplier_smaller_than_one_rejects_one():
    with pytest.raises(KwsError):
        qmath.quantize_multiplier_smaller_than_one_exp(1.0)


def test_round_half_away_from_zero():
    assert [qmath.round_half_away(v) for v in (0.5, 1.5, -0.5, -2.5, 0.49999999999999994)] == \
        [1.0, 2.0, -1.0, -3.0, 0.0]


def test_srdhm_rounds_and_saturates_like_vqrdmulh():
    f = qmath.saturating_rounding_doubling_high_mul
    assert f(qmath.INT32_MIN, qmath.INT32_MIN) == qmath.INT32_MAX
    assert f(1 << 30, 1 << 30) == 1 << 29
    assert f(1, 1 << 30) == 1  # +0.5 rounds up
    assert f(-1, 1 << 30) == 0  # -0.5 rounds toward zero: gemmlowp's nudge is 1 - 2^30
    assert f(-3, 1 << 30) == -1  # -1.5 -> -1
    a = np.array([12345678, -987654321, 2 ** 31 - 1])
    b = np.array([-1518500250, 1518500250, 2 ** 31 - 1])
    exact = [round(x * y / 2 ** 31) for x, y in zip(a.tolist(), b.tolist())]
    assert np.all(np.abs(f(a, b) - exact) <= 1)


def test_rounding_divide_by_pot_rounds_half_away_from_zero():
    x = np.array([5, -5, -6, 6, 7, -7, 0])
    assert qmath.rounding_divide_by_pot(x, 1).tolist() == [3, -3, -3, 3, 4, -4, 0]
    assert qmath.rounding_divide_by_pot(x, 2).tolist() == [1, -1, -2, 2, 2, -2, 0]
    assert qmath.rounding_divide_by_pot(x, np.array([0, 0, 1, 1, 2, 2, 3])).tolist() == \
        [5, -5, -3, 3, 2, -2, 0]


def test_multiply_by_quantized_multiplier_rounds_twice():
    # 0.1 * 100 = 10; per-channel arrays broadcast
    m, s = qmath.quantize_multiplier(0.1)
    assert qmath.multiply_by_quantized_multiplier(100, m, s) == 10
    m2, s2 = qmath.quantize_multiplier(3.0)
    out = qmath.multiply_by_quantized_multiplier(np.array([7, 7]), np.array([m, m2]),
                                                 np.array([s, s2]))
    assert out.tolist() == [1, 21]
    # Double rounding (tflite-micro): 1 * 0.3 = 0.3, but SRDHM first rounds 1 * 0.6 to 1, then
    # the shift rounds 0.5 to 1; a single rounding (TensorFlow's TFLite) gives 0.
    m3, s3 = qmath.quantize_multiplier(0.3)
    assert (m3, s3) == (1288490189, -1)
    assert qmath.multiply_by_quantized_multiplier(1, m3, s3) == 1


def test_activation_ranges():
    assert qmath.activation_range("NONE", 0.1, -5) == (-128, 127)
    assert qmath.activation_range("RELU", 0.1, -5) == (-5, 127)
    assert qmath.activation_range("RELU6", 0.1, -5) == (-5, 55)
    assert qmath.activation_range("RELU_N1_TO_1", 0.1, -5) == (-15, 5)
    with pytest.raises(KwsError, match="TANH"):
        qmath.activation_range("TANH", 0.1, 0)


def test_fixed_point_logistic_and_tanh_track_the_real_functions():
    x = np.linspace(-7.9, 7.9, 2001)
    raw = np.round(x * 2 ** 27).astype(np.int64)  # Q4.27
    sig = qmath.fixed_point_logistic(raw, 4) / 2 ** 31
    tanh = qmath.fixed_point_tanh(raw, 4) / 2 ** 31
    assert np.max(np.abs(sig - 1 / (1 + np.exp(-raw / 2 ** 27)))) < 1e-6
    assert np.max(np.abs(tanh - np.tanh(raw / 2 ** 27))) < 1e-6
    assert qmath.fixed_point_logistic(0, 4) == 1 << 30
    assert qmath.fixed_point_tanh(0, 4) == 0


def test_exp_on_negative_values():
    x = -np.linspace(0, 15.9, 500)
    raw = np.round(x * 2 ** 27).astype(np.int64)
    got = qmath.exp_on_negative_values(raw, 4) / 2 ** 31
    assert np.max(np.abs(got - np.exp(raw / 2 ** 27))) < 1e-6
    assert qmath.exp_on_negative_values(0, 4) == qmath.INT32_MAX


def test_input_radius():
    # input scale 0.1: multiplier 0.1 * 2^27 has frexp exponent 24 -> radius 15 * 2^27 / 2^24
    _, shift = math.frexp(0.1 * 2 ** 27)
    assert qmath.calculate_input_radius(4, shift) == 120
