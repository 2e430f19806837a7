"""TFLite / gemmlowp integer arithmetic, exactly as the tflite-micro kernels compute it.

Two kinds of function live here:

- Prepare-time helpers that turn float32 scales into integers (`quantize_multiplier`,
  `activation_range`, `calculate_input_radius`). They follow the C++ expression by expression,
  including where it computes in float32 and where in double, because a multiplier one unit
  off changes an output byte now and then.
- Eval-time primitives on numpy int64 arrays that hold C int32 values
  (`saturating_rounding_doubling_high_mul`, `rounding_divide_by_pot`,
  `multiply_by_quantized_multiplier`, and gemmlowp's fixed-point `logistic`/`tanh`). Where the
  C code lets an int32 wrap (gemmlowp's plain Add/Sub, `x * (1 << left_shift)`), `wrap_int32`
  does the same, so the results stay equal on every input, not just the common ones.

Rounding is tflite-micro's: requantization rounds twice (SaturatingRoundingDoublingHighMul,
then RoundingDivideByPOT), i.e. the build without TFLITE_SINGLE_ROUNDING. TensorFlow's own
TFLite 2.21 rounds once, which is why it is not bit-exact with tflite-micro.
"""

from __future__ import annotations

import math

import numpy as np

from kws.errors import KwsError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN = -128
INT8_MAX = 127

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's complement wrap of int64 values to int32 (what C int32 arithmetic does in practice)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# ---------------------------------------------------------------------------------------------
# Prepare time: floats -> integers


def round_half_away(x: float) -> float:
    """TfLiteRound / std::round: nearest integer, halves away from zero (exact for any double)."""
    a = abs(float(x))
    f = math.floor(a)
    r = f + (1.0 if a - f >= 0.5 else 0.0)  # a - f is exact for doubles
    return math.copysign(r, x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier(double): real ~= multiplier * 2^(shift - 31), multiplier in
    [2^30, 2^31) (or 0). `shift` > 0 means a left shift, as TFLite stores it."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise KwsError(f"cannot quantize the multiplier {real}")
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * float(1 << 31)))
    if q_fixed > (1 << 31):
        raise KwsError(f"quantize_multiplier({real}): mantissa out of range")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise KwsError(f"quantize_multiplier({real}): mantissa out of range")
    if shift < -31:  # every bit would be shifted out: TFLite flushes it to zero
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: as quantize_multiplier, for 0 < real < 1."""
    if not 0.0 < float(real) < 1.0:
        raise KwsError(f"multiplier {real} must lie strictly between 0 and 1")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise KwsError(f"multiplier {real} has a positive shift {shift}")
    return multiplier, shift


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation as an int clamp range. The
    float -> int step divides in float32 (TFLite's Quantize helper), then rounds half away."""
    def quantize(value: float) -> int:
        return int(zero_point) + int(round_half_away(float(np.float32(value) /
                                                           np.float32(scale))))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise KwsError(f"fused activation {activation} is not supported (only {', '.join(ACTIVATIONS)})")


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """CalculateInputRadius: largest |input - zero_point| the LOGISTIC/TANH kernels evaluate;
    beyond it they saturate."""
    if not 0 <= input_left_shift < 63:
        raise KwsError(f"input left shift {input_left_shift} is out of range")
    value = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits -
                                                                  input_integer_bits))
             / float(1 << input_left_shift))
    return math.floor(value)


# ---------------------------------------------------------------------------------------------
# Eval time: int64 arrays holding int32 values


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH): round(a * b / 2^31), ties away
    from zero, INT32_MIN * INT32_MIN saturating to INT32_MAX."""
    a, b = _i64(a), _i64(b)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b  # |ab| <= 2^62 fits int64
    n = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(n >= 0, n >> 31, -((-n) >> 31))  # C division truncates toward zero
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
    `exponent` may be an array (per-channel shifts), each in [0, 31]."""
    x, e = _i64(x), _i64(exponent)
    mask = np.left_shift(np.int64(1), e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32: saturating left shift for
    exponent > 0, rounding right shift for exponent < 0."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, x * (1 << exponent)))


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier(int32 x, ...), double-rounding variant:
    RoundingDivideByPOT(SRDHM(x * 2^max(shift, 0), multiplier), max(-shift, 0)).
    `multiplier` and `shift` may be arrays (per channel)."""
    x, shift = _i64(x), _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = wrap_int32(x * np.left_shift(np.int64(1), left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)


def rounding_half_sum(a, b) -> np.ndarray:
    """gemmlowp RoundingHalfSum for int32: (a + b) / 2 rounded, ties away from zero."""
    s = _i64(a) + _i64(b)
    n = s + np.where(s >= 0, 1, -1)
    return np.where(n >= 0, n // 2, -((-n) // 2))


# ---------------------------------------------------------------------------------------------
# gemmlowp fixed point (FixedPoint<int32_t, IntegerBits>): values are raw int32 with
# 31 - IntegerBits fractional bits; products are SRDHM, sums wrap.

_EXP_CONSTANT_TERM = 1895147668  # exp(-1/8) in Q0.31
_ONE_THIRD = 715827883  # 1/3 in Q0.31
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # exp(-2^k) in Q0.31
_48_OVER_17 = 1515870810  # Q2.29
_NEG_32_OVER_17 = -1010580540  # Q2.29
_ONE_Q2 = 1 << 29


def _add(a, b):
    return wrap_int32(_i64(a) + _i64(b))


def _sub(a, b):
    return wrap_int32(_i64(a) - _i64(b))


def _neg(a):
    return wrap_int32(-_i64(a))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    x = _add(a, 1 << 28)
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        _add(saturating_rounding_doubling_high_mul(_add(x4_over_4, x3), _ONE_THIRD), x2), -1)
    return _add(_EXP_CONSTANT_TERM,
                saturating_rounding_doubling_high_mul(_EXP_CONSTANT_TERM, _add(x, poly)))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: exp(a) for a <= 0 in Q(integer_bits), result Q0.31."""
    a = _i64(a)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    a_mod_quarter_minus_one_quarter = _sub(a & (one_quarter - 1), one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = _sub(a_mod_quarter_minus_one_quarter, a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0,
                              saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_half(a):
    """Shared Newton-Raphson loop of gemmlowp's 1/(1+x) and (1-x)/(1+x): returns
    x ~= 1 / ((1 + a) / 2) in Q2.29 for a in (0, 1) in Q0.31."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = _add(_48_OVER_17, saturating_rounding_doubling_high_mul(half_denominator,
                                                                _NEG_32_OVER_17))
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus = _sub(_ONE_Q2, half_denominator_times_x)
        x = _add(x, saturating_rounding_multiply_by_pot(
            saturating_rounding_doubling_high_mul(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return saturating_rounding_multiply_by_pot(_newton_reciprocal_half(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return saturating_rounding_multiply_by_pot(_sub(_newton_reciprocal_half(a), _ONE_Q2), 2)


def fixed_point_logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic: Q(integer_bits) in, Q0.31 out."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, _neg(a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(_neg(abs_input), integer_bits))
    if_negative = _sub(INT32_MAX, if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def fixed_point_tanh(a, integer_bits: int) -> np.ndarray:
    """gemmlowp tanh: Q(integer_bits) in, Q0.31 out."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, _neg(a))  # -|a|
    # neg_tanh_on_negative_values: ExactMulByPot<1> doubles the value by adding an integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, _neg(t), t))
