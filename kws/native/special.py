"""Generate-time specializations of the native kernels, each one proven exact before it is used.

The generic kernels (ops.py, kws_kernels.c) follow tflite-micro step by step: ADD rescales both
inputs and the sum (three MultiplyByQuantizedMultiplier, each a 64-bit product and two
roundings), MUL and FULLY_CONNECTED requantize with a 64-bit product and two roundings. The
constants are known here, so cheaper integer forms can be chosen per op, as long as they give
the very same int8 for every input the op can see:

- ADD / SUB of two int8 tensors: out = clamp((a*x + b*y + c) >> k), one rounding, two
  multiply-accumulates. The integers (a, b, c, k) come from a small linear program (maximize
  the margin of a*x + b*y + c inside every output's interval), and are then checked on all
  256 x 256 input pairs against ops.add_sub_values; no form is used without that check.
- MUL of two int8 tensors: out = clamp(((x + o1) * (m*y + m*o2) + c) >> k), found and checked
  the same way (the reference output depends on (x + o1) * (y + o2) only).
- A binary op with a constant scalar operand, LOGISTIC and TANH: a function of one int8, so a
  256-entry table computed from the reference arithmetic (exact by construction).
- FULLY_CONNECTED requantization: the double rounding of MultiplyByQuantizedMultiplier kept
  exactly, in fewer instructions: SaturatingRoundingDoublingHighMul(acc, m) is
  (acc * 2m + 2^31) >> 32 (one SMMLAR with 2m - 2^32, see kws_kernels.c) and
  RoundingDivideByPOT(y, e) + zero point is (y + (y >> 31) + 2^(e-1) + zp * 2^e) >> e. Valid for
  2^30 <= m < 2^31, 1 <= e and accumulators whose bound (from the weights) leaves room for the
  rounding constant; `fc_channels` returns None otherwise and the generic kernel runs.
- FULLY_CONNECTED weights: two rows per int16 (2^8 * odd + even), so that one SMLAD on the raw
  word and one on its SXTB16 give both rows (the odd one as (F - E) >> 8), when `pairable`
  proves every int16 and every partial sum in range; else the byte-interleaved layout.

Every "form" below comes with `values(...)`, the integer arithmetic the C code performs, so the
tests can replay it against the reference on every input.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from kws.native import ops, qmath

INT8 = np.arange(-128, 128, dtype=np.int64)
_X, _Y = np.meshgrid(INT8, INT8, indexing="ij")  # [256, 256]: x along axis 0, y along axis 1
_INT32_LIMIT = 1 << 31
_MAX_K = 30


def _fits_int32(*values) -> bool:
    return all(int(np.abs(np.asarray(v, np.int64)).max(initial=0)) < _INT32_LIMIT - 1
               for v in values)


def _clamp(v, lo: int, hi: int) -> np.ndarray:
    return np.clip(v, lo, hi)


# ---------------------------------------------------------------------------------------------
# Binary ops: exhaustive reference tables


def binary_reference(p) -> np.ndarray:
    """[256, 256] int64: the reference output for x = INT8[i], y = INT8[j]."""
    if p.op in ("ADD", "SUB"):
        return ops.add_sub_values(p, _X, _Y).astype(np.int64)
    return ops.mul_values(p, _X, _Y).astype(np.int64)


@dataclass(frozen=True)
class AffineForm:
    """ADD / SUB: out = clamp((a*x + b*y + c) >> k, lo, hi); C evaluates a*x + (b*y + c)."""

    a: int
    b: int
    c: int
    k: int
    lo: int
    hi: int

    def values(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
        inner = self.b * y + self.c
        total = self.a * x + inner
        if not _fits_int32(self.a * x, self.b * y, inner, total):
            raise OverflowError("affine form leaves int32")
        return _clamp(total >> self.k, self.lo, self.hi)


@dataclass(frozen=True)
class ProductForm:
    """MUL: out = clamp(((x + o1) * (m*y + m*o2) + c) >> k, lo, hi)."""

    o1: int
    o2: int
    m: int
    c: int
    k: int
    lo: int
    hi: int

    def values(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
        u = self.m * y + self.m * self.o2
        total = (x + self.o1) * u + self.c
        if not _fits_int32(self.m * y, self.m * self.o2, u, (x + self.o1) * u, total):
            raise OverflowError("product form leaves int32")
        return _clamp(total >> self.k, self.lo, self.hi)


def _margin_lp(features: np.ndarray, target: np.ndarray, lo: int, hi: int):
    """Real (w, c) maximizing t with target + t <= F.w + c <= target + 1 - t on the rows whose
    side is not clamped away. Returns (w, c, t) or None."""
    from scipy.optimize import linprog

    n, d = features.shape
    lower = target > lo
    upper = target < hi
    rows, rhs = [], []
    ones = np.ones((n, 1))
    # -(F.w + c) + t <= -target
    rows.append(np.hstack([-features[lower], -ones[lower], ones[lower]]))
    rhs.append(-target[lower].astype(float))
    # F.w + c + t <= target + 1
    rows.append(np.hstack([features[upper], ones[upper], ones[upper]]))
    rhs.append(target[upper].astype(float) + 1.0)
    a_ub = np.vstack(rows).astype(float)
    b_ub = np.concatenate(rhs)
    cost = np.zeros(d + 2)
    cost[-1] = -1.0
    bounds = [(None, None)] * (d + 1) + [(None, 1.0)]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0 or res.x[-1] <= 0:
        return None
    return res.x[:d], res.x[d], res.x[-1]


def _boundary_rows(target: np.ndarray) -> np.ndarray:
    """Mask of the [256, 256] pairs next to a change of the output along y (plus the edges):
    the constraints that bind for an output monotone in y. Only used to make the linear
    program small; the integer check below uses every pair."""
    keep = np.zeros(target.shape, bool)
    change = target[:, 1:] != target[:, :-1]
    keep[:, 1:] |= change
    keep[:, :-1] |= change
    keep[:, 0] = keep[:, -1] = True
    change_x = target[1:, :] != target[:-1, :]
    keep[1:, :] |= change_x
    keep[:-1, :] |= change_x
    keep[0, :] = keep[-1, :] = True
    return keep


def _integer_fit(features: np.ndarray, target: np.ndarray, lo: int, hi: int, w_real, make):
    """Smallest k (then nearby integer weights) for which an integer c puts every row's value in
    its output interval; `make(weights, c, k)` builds the form and must reproduce `target`."""
    lower = target > lo
    upper = target < hi
    for k in range(_MAX_K + 1):
        scale = float(1 << k)
        centre = np.round(np.asarray(w_real) * scale).astype(np.int64)
        if np.abs(centre).max(initial=0) * 256 >= _INT32_LIMIT:
            return None
        for delta in itertools.product((0, -1, 1), repeat=len(centre)):
            w = centre + np.array(delta, np.int64)
            v = features @ w
            c_min = int(((target[lower] << k) - v[lower]).max(initial=-(1 << 40)))
            c_max = int((((target[upper] + 1) << k) - 1 - v[upper]).min(initial=1 << 40))
            if c_min > c_max:
                continue
            c = (c_min + c_max) // 2 if abs(c_min) < (1 << 40) and abs(c_max) < (1 << 40) \
                else (c_min if abs(c_min) < (1 << 40) else c_max)
            try:
                form = make(w, c, k)
            except OverflowError:
                continue
            if form is not None:
                return form
    return None


@functools.lru_cache(maxsize=256)
def _affine_cached(key) -> AffineForm | None:
    p = SimpleNamespace(**dict(key))
    target = binary_reference(p)
    lo, hi = p.activation_min, p.activation_max
    keep = _boundary_rows(target)
    feats = np.stack([_X[keep], _Y[keep]], axis=1).astype(np.int64)
    lp = _margin_lp(feats.astype(float), target[keep], lo, hi)
    if lp is None:
        return None
    w_real, _, _ = lp
    all_feats = np.stack([_X.ravel(), _Y.ravel()], axis=1)

    def make(w, c, k):
        form = AffineForm(int(w[0]), int(w[1]), int(c), k, lo, hi)
        return form if verify(form, p) else None

    return _integer_fit(all_feats, target.ravel(), lo, hi, w_real, make)


@functools.lru_cache(maxsize=256)
def _product_cached(key) -> ProductForm | None:
    p = SimpleNamespace(**dict(key))
    target = binary_reference(p)
    lo, hi = p.activation_min, p.activation_max
    o1, o2 = p.input1_offset, p.input2_offset
    prod = ((_X + o1) * (_Y + o2)).ravel()
    flat = target.ravel()
    values, first = np.unique(prod, return_index=True)
    if not np.array_equal(flat, flat[first][np.searchsorted(values, prod)]):
        return None  # the output is not a function of the product alone
    lp = _margin_lp(values[:, None].astype(float), flat[first], lo, hi)
    if lp is None:
        return None
    w_real, _, _ = lp

    def make(w, c, k):
        form = ProductForm(o1, o2, int(w[0]), int(c), k, lo, hi)
        return form if verify(form, p) else None

    return _integer_fit(values[:, None], flat[first], lo, hi, w_real, make)


def _key(p) -> tuple:
    fields = ("op", "input1_offset", "input2_offset", "output_offset", "left_shift",
              "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
              "output_multiplier", "output_shift", "activation_min", "activation_max")
    return tuple((f, getattr(p, f)) for f in fields if hasattr(p, f))


def verify(form, p) -> bool:
    """The form equals the reference arithmetic of `p` on all 65536 int8 pairs, and none of its
    intermediate values leaves int32."""
    try:
        got = form.values(_X, _Y)
    except OverflowError:
        return False
    return bool(np.array_equal(got, binary_reference(p)))


def affine_add_sub(p: ops.AddSubParams) -> AffineForm | None:
    """A single-rounding form of an ADD/SUB, proven equal on all input pairs, or None."""
    return _affine_cached(_key(p))


def product_mul(p: ops.MulParams) -> ProductForm | None:
    """A single-rounding form of a MUL, proven equal on all input pairs, or None."""
    return _product_cached(_key(p))


def unary_table(p, constant: int, constant_position: int) -> np.ndarray:
    """[256] int8, natural order (entry i is for x = i - 128): a binary op with the operand at
    `constant_position` (0 or 1) fixed to the int8 `constant`, the other one x."""
    fixed = np.full(256, constant, np.int64)
    x, y = (fixed, INT8) if constant_position == 0 else (INT8, fixed)
    if p.op in ("ADD", "SUB"):
        return ops.add_sub_values(p, x, y).astype(np.int8)
    return ops.mul_values(p, x, y).astype(np.int8)


def natural_lut(table: np.ndarray) -> np.ndarray:
    """A LOGISTIC/TANH table indexed by (uint8_t)x, reordered to be indexed by x + 128."""
    return np.asarray(table, np.int8)[INT8 & 0xFF]


# ---------------------------------------------------------------------------------------------
# FULLY_CONNECTED


@dataclass(frozen=True, eq=False)
class FcChannels:
    """Per output channel: bias (input offset folded in), multiplier2 = 2m - 2^32 as int32 (2m
    as uint32), round = 2^(e-1) + output_zp * 2^e, shift = e; as an int32 [output_depth, 4]."""

    table: np.ndarray
    full_range: bool  # the clamp is exactly int8's range (one SSAT)
    paired: bool = False  # weights in the row-pair layout (pair_weights), else interleave_weights

    @property
    def bias(self) -> np.ndarray:
        """The accumulator start values the C kernel takes: the folded biases, with the paired
        layout's odd rows of each group holding bias_even + 2^8 * bias_odd (pair_bias)."""
        bias = self.table[:, 0]
        return pair_bias(bias) if self.paired else bias

    @property
    def shared(self) -> bool:
        """One (multiplier2, round, shift) for every channel: per-tensor weights. The C then
        stores it once instead of once per channel (12 bytes per channel less flash)."""
        return bool((self.table[:, 1:] == self.table[0, 1:]).all())

    @property
    def requant(self) -> np.ndarray:
        """(multiplier2, round, shift) rows as the C stores them: one row when `shared`."""
        return self.table[:1, 1:] if self.shared else self.table[:, 1:]

    def values(self, acc, lo: int, hi: int) -> np.ndarray:
        """The fast-path requantization as the C code computes it."""
        acc = np.asarray(acc, np.int64)
        m2 = self.table[:, 1].astype(np.int64) & 0xFFFFFFFF
        y = (acc * m2 + (1 << 31)) >> 32
        v = (y + (y >> 63) + self.table[:, 2]) >> self.table[:, 3]
        return np.clip(v, lo, hi)


def fc_accumulator_bound(p: ops.FullyConnectedParams) -> np.ndarray:
    """Per channel, a bound on |accumulator| over all int8 inputs: |bias| + 128 * sum |w|."""
    w = np.abs(p.weights.astype(np.int64)).sum(axis=1)
    return np.abs(p.folded_bias.astype(np.int64)) + 128 * w


def fc_channels(p: ops.FullyConnectedParams) -> FcChannels | None:
    """The fast requantization constants, or None when a precondition fails (then the generic
    MultiplyByQuantizedMultiplier runs)."""
    m = p.multiplier.astype(np.int64)
    e = -p.shift.astype(np.int64)
    if m.size == 0 or m.min() < (1 << 30) or m.max() >= (1 << 31) or e.min() < 1 or e.max() > 30:
        return None
    rnd = (1 << (e - 1)) + p.output_offset * (1 << e)
    bound = fc_accumulator_bound(p)
    if int((bound + 2 + np.abs(rnd)).max()) >= _INT32_LIMIT:
        return None
    m2 = 2 * m - (1 << 32)
    table = np.stack([p.folded_bias.astype(np.int64), m2, rnd, e], axis=1)
    return FcChannels(table=table, full_range=(p.activation_min, p.activation_max) == (-128, 127),
                      paired=pairable(p.weights, bound))


def fc_requant_reference(p: ops.FullyConnectedParams, acc) -> np.ndarray:
    """The generic requantization (what TFLM computes) of per-channel accumulators acc[..., C]."""
    scaled = qmath.multiply_by_quantized_multiplier(acc, p.multiplier, p.shift)
    return np.clip(scaled + p.output_offset, p.activation_min, p.activation_max)


FC_GROUP = 4  # output rows per pass over the input in the fast kernel


def interleave_weights(weights: np.ndarray, group: int = FC_GROUP) -> np.ndarray:
    """The fast kernel's weight order: per group of `group` rows, for each 4 input columns the
    4 bytes of row 0, of row 1, ...; then the depth % 4 tail columns one by one (the `group`
    rows' bytes of column k together); the output_depth % group rows left over follow row by
    row."""
    weights = np.asarray(weights, np.int8)
    out_depth, depth = weights.shape
    d4 = depth // 4 * 4
    parts = []
    for g in range(out_depth // group):
        blk = weights[g * group:(g + 1) * group]
        parts.append(blk[:, :d4].reshape(group, d4 // 4, 4).transpose(1, 0, 2).reshape(-1))
        parts.append(blk[:, d4:].T.reshape(-1))
    parts.append(weights[out_depth // group * group:].reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, np.int8)


# --- the row-pair layout ------------------------------------------------------------------
#
# Two rows r (even) and r + 1 (odd) of a group share one int16 per input column:
# h = 2^8 * w[r+1][k] + w[r][k]. A word holds two such halves, so for an input word of two int16
# lanes (x_i, x_j) one SMLAD on the raw word adds x_i * h_i + x_j * h_j to a "full" accumulator
# F = sum_k x_k * (2^8 * w[r+1][k] + w[r][k]), and one SXTB16 (the low byte of each half, which
# is w[r][k] itself) plus a second SMLAD add sum_k x_k * w[r][k] to the even row's accumulator
# E. The odd row is then (F - E) >> 8, exactly. That is 1 SXTB16 and 2 SMLAD per 4 MACs where
# the byte layout needs 2 SXTB16 and 2 SMLAD.
#
# Exact when (pairable): h fits int16 (not w[r+1][k] == -128 with w[r][k] < 0; TFLite's
# symmetric int8 weights never reach -128), and no partial sum of F leaves int32:
# 2^8 * bound[r+1] + bound[r] < 2^31 with bound = fc_accumulator_bound (so F - E = 2^8 * odd
# row, and F's start value bias[r] + 2^8 * bias[r+1], also fit). Weights and start values are
# arranged here; the C code only sums and shifts.

PAIR_SHIFT = 8


def pairable(weights: np.ndarray, bound: np.ndarray, group: int = FC_GROUP) -> bool:
    """Whether the row-pair layout is exact for these weights and per-channel accumulator
    bounds (every pair of every full group of rows; the rows left over stay unpaired)."""
    w = np.asarray(weights, np.int64)
    rows = w.shape[0] // group * group
    even, odd = w[0:rows:2], w[1:rows:2]
    if ((odd == -128) & (even < 0)).any():
        return False
    b = np.asarray(bound, np.int64)
    return bool(((b[1:rows:2] << PAIR_SHIFT) + b[0:rows:2] < _INT32_LIMIT - 1).all())


def pair_bias(bias: np.ndarray, group: int = FC_GROUP) -> np.ndarray:
    """The kernel's start values for the row-pair layout: each odd row of a full group starts
    the full accumulator F, bias[r] + 2^8 * bias[r+1]; even rows and the rows left over keep
    their bias."""
    out = np.asarray(bias, np.int64).copy()
    rows = out.size // group * group
    out[1:rows:2] = out[0:rows:2] + (out[1:rows:2] << PAIR_SHIFT)
    return out


def _block_order(depth: int) -> np.ndarray:
    """Column order of the row-pair layout inside each 4-input block, as the widened input
    words pair them: (x0, x2) then (x1, x3); the depth % 4 tail columns follow in order."""
    d4 = depth // 4 * 4
    blocks = (np.arange(0, d4, 4)[:, None] + np.array([0, 2, 1, 3])).reshape(-1)
    return np.concatenate([blocks, np.arange(d4, depth)]).astype(np.int64)


def pair_weights(weights: np.ndarray, group: int = FC_GROUP) -> np.ndarray:
    """int16 weights of the row-pair layout. Per group of 4 rows (pairs (0, 1) and (2, 3)):
    per 4-input block, pair 0's halves for columns 0, 2, 1, 3, then pair 1's; then per tail
    column, pair 0's half and pair 1's. The output_depth % 4 rows left over follow one by one,
    as int16 weights in the same column order (no pairing). Requires `pairable`."""
    w = np.asarray(weights, np.int64)
    out_depth, depth = w.shape
    order = _block_order(depth)
    d4 = depth // 4 * 4
    parts = []
    for g in range(out_depth // group):
        blk = w[g * group:(g + 1) * group][:, order]
        halves = (blk[1::2] << PAIR_SHIFT) + blk[0::2]  # [pairs, depth]
        pairs = halves.shape[0]
        head = halves[:, :d4].reshape(pairs, d4 // 4, 4).transpose(1, 0, 2).reshape(-1)
        parts += [head, halves[:, d4:].T.reshape(-1)]
    parts.append(w[out_depth // group * group:][:, order].reshape(-1))
    out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if out.size and (out.min() < -(1 << 15) or out.max() >= 1 << 15):
        raise ValueError("weights are not pairable (a half leaves int16)")
    return out.astype(np.int16)


def pair_dot(weights_paired: np.ndarray, start: np.ndarray, x: np.ndarray, out_depth: int,
             depth: int, group: int = FC_GROUP) -> np.ndarray:
    """Accumulators read from the row-pair layout as the C kernel computes them: start values
    (pair_bias) plus the sums, each odd row recovered as (F - E) >> 8 (for tests)."""
    w = np.asarray(weights_paired, np.int64)
    x = np.asarray(x, np.int64)[_block_order(depth)]
    acc = np.asarray(start, np.int64).copy()
    d4 = depth // 4 * 4
    pos = 0
    for g in range(out_depth // group):
        pairs = group // 2
        head = w[pos:pos + pairs * d4].reshape(d4 // 4, pairs, 4).transpose(1, 0, 2)
        pos += pairs * d4
        tail = w[pos:pos + pairs * (depth - d4)].reshape(depth - d4, pairs).T
        pos += pairs * (depth - d4)
        halves = np.concatenate([head.reshape(pairs, d4), tail], axis=1)  # [pairs, depth]
        for j in range(pairs):
            even, full = g * group + 2 * j, g * group + 2 * j + 1
            e = acc[even] + (((halves[j] & 0xFF) ^ 0x80) - 0x80) @ x  # SXTB16: the low bytes
            f = acc[full] + halves[j] @ x
            assert abs(f) < _INT32_LIMIT and abs(e) < _INT32_LIMIT
            acc[even], acc[full] = e, (f - e) >> PAIR_SHIFT
    for c in range(out_depth // group * group, out_depth):
        acc[c] += w[pos:pos + depth] @ x
        pos += depth
    return acc


def fc_fast_dot(weights_interleaved: np.ndarray, x: np.ndarray, out_depth: int, depth: int,
                group: int = FC_GROUP) -> np.ndarray:
    """Dot products read from the interleaved layout as the C kernel walks it (for tests)."""
    w = np.asarray(weights_interleaved, np.int64)
    x = np.asarray(x, np.int64)
    d4 = depth // 4 * 4
    acc = np.zeros(out_depth, np.int64)
    pos = 0
    for g in range(out_depth // group):
        head = w[pos:pos + group * d4].reshape(d4 // 4, group, 4)
        pos += group * d4
        tail = w[pos:pos + group * (depth - d4)].reshape(depth - d4, group)
        pos += group * (depth - d4)
        for r in range(group):
            acc[g * group + r] = (head[:, r, :].reshape(-1) * x[:d4]).sum() + \
                (tail[:, r] * x[d4:]).sum()
    for c in range(out_depth // group * group, out_depth):
        acc[c] = (w[pos:pos + depth] * x).sum()
        pos += depth
    return acc


# ---------------------------------------------------------------------------------------------
# MUL on the fast requantization


@dataclass(frozen=True)
class MulFast:
    """MUL with the exact double rounding in few instructions (the fast FULLY_CONNECTED
    requantization applied to the product): P = (x + o1) * (y + o2),
    out = clamp((s + (s >> 31) + round) >> shift) with s = (P * 2m + 2^31) >> 32."""

    o1: int
    o2: int
    multiplier2: int  # 2m - 2^32, as int32
    round: int
    shift: int
    lo: int
    hi: int

    def values(self, x, y) -> np.ndarray:
        product = (np.asarray(x, np.int64) + self.o1) * (np.asarray(y, np.int64) + self.o2)
        s = (product * (self.multiplier2 & 0xFFFFFFFF) + (1 << 31)) >> 32
        total = s + (s >> 63) + self.round
        if not _fits_int32(product, total):
            raise OverflowError("MUL fast path leaves int32")
        return _clamp(total >> self.shift, self.lo, self.hi)


def mul_fast(p: ops.MulParams) -> MulFast | None:
    """The fast exact MUL for `p`, proven equal on all input pairs, or None."""
    m, e = int(p.output_multiplier), -int(p.output_shift)
    if not ((1 << 30) <= m < (1 << 31) and 1 <= e <= 30):
        return None
    form = MulFast(p.input1_offset, p.input2_offset, 2 * m - (1 << 32),
                   (1 << (e - 1)) + p.output_offset * (1 << e), e, p.activation_min,
                   p.activation_max)
    return form if verify(form, p) else None
