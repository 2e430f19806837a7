"""Everything the C front end needs, computed from FeatureParams, and its rendered sources.

The C FFT (firmware_templates/features/kws_features.c.j2) is a complex FFT of HALF = fft_size/2
points over (even, odd) sample pairs, untangled into the real spectrum afterwards (`radices`
makes the plan; 8 x 8 x fused 4 for the default 512 points):
- stage 1, radix 8 (radix 4 when the window leaves more than one input of its butterflies in
  the zero padding), fused with the windowing: butterfly n reads complex samples n + t*HALF/r
  straight from the float sample buffer and writes r adjacent outputs at `first_dst[n]`, so no
  separate bit-reversal pass is needed;
- radix-8 (radix-4) stages with per-stage contiguous twiddles (no index arithmetic), or radix-4
  ones and one radix-2 stage when the factors of HALF leave no other choice;
- the real split computes bins k and HALF - k together and only their power; when the last
  stage is radix 4 of span HALF (HALF >= 16) it is fused with the split (`fused_last_stage`,
  `_fused_last`, `last_twiddles`) and the last stage's complex outputs are never stored; a
  radix-8 stage before it writes its outputs in blocks the fused stage walks (`last_walk`).
`fft_model` repeats those steps in numpy (float64) so tests can check the plan itself.
"""

from __future__ import annotations

import numpy as np

from kws.csource.carrays import c_float, float_rows, int_rows
from kws.csource.render import render
from kws.features import reference
from kws.features.params import FeatureParams

TEMPLATES = {
    "kws_features.h": "features/kws_features.h.j2",
    "kws_feature_tables.h": "features/kws_feature_tables.h.j2",
    "kws_features.c": "features/kws_features.c.j2",
}

SAMPLE_SCALE = 2.0**-15
"""int16 -> [-1, 1): folded into the window table (a power of two, so exactly the same bits)."""

POWER_SCALE = 4.0
"""The C split skips the two factors 1/2 of the textbook formulas, so its power is 4x (exactly:
a power of two); the mel weights carry the 1/4 instead."""


def sparse_mel(params: FeatureParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first_bin, bin_count, offset, weights) holding only each triangle's non-zero span."""
    mel = reference.mel_matrix(params).astype(np.float32)
    first, count, offset, weights = [], [], [], []
    for band in mel:
        nz = np.flatnonzero(band)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        first.append(lo)
        count.append(hi - lo)
        offset.append(sum(count[:-1]))
        weights.extend(band[lo:hi])
    return (np.array(first), np.array(count), np.array(offset), np.array(weights, np.float32))


def radices(half: int, first8: bool = True) -> list[int]:
    """Stage radices of the HALF-point complex FFT, first stage first.

    With HALF >= 16 the last stage is radix 4 of span HALF, fused with the real split
    (`fused_last_stage`), and the stages before it are radix 8 where the factors allow (one
    pass where two radix-4 ones would load and store every point), radix 4 otherwise: the first
    one radix 8 only when `first8` (the window leaves at most one of its 8 inputs in the zero
    padding, `first_radix8_fits`). Where that leaves a factor 2 (and for HALF < 16), radix-4
    stages and a last radix-2 one, with the split after them."""
    if half < 4 or half & (half - 1):
        raise ValueError(f"the complex FFT needs a power of two >= 4 points, not {half}")
    bits = half.bit_length() - 1
    if bits >= 4:
        rest = bits - 2  # bits before the fused radix-4 stage
        first = 3 if first8 and rest >= 3 else 2
        if rest - first == 1 and first == 3:
            first = 2
        rem = rest - first
        if rem != 1:
            mid = [3] * (rem // 3) + {0: [], 1: [], 2: [2]}[rem % 3]
            if rem % 3 == 1:
                mid = [3] * ((rem - 4) // 3) + [2, 2]
            return [1 << first] + [1 << m for m in mid] + [4]
    out, span = [4], 4
    while span * 4 <= half:
        out.append(4)
        span *= 4
    if span < half:
        out.append(2)
    return out


def window_complex(params: FeatureParams) -> int:
    """Complex samples (sample pairs) the window touches: the rest of the FFT input is zero."""
    return -(-params.window_samples // 2)


def first_radix8_fits(fft_size: int, window_samples: int) -> bool:
    """Whether a radix-8 first stage finds at most its last input in the zero padding (the C
    has a variant for 8 and one for 7 inputs): complex samples < 7 * HALF/8 all in the window."""
    half = fft_size // 2
    return half >= 8 and -(-window_samples // 2) >= 7 * (half // 8)


def plan_radices(params: FeatureParams) -> list[int]:
    return radices(params.fft_size // 2, first_radix8_fits(params.fft_size, params.window_samples))


def dit_order(half: int, rs: list[int] | None = None) -> np.ndarray:
    """order[p] = the input index the decimation-in-time stages expect at position p (mixed
    radix digit reversal for the radices `rs`, default `radices(half)`)."""

    def order(idx: np.ndarray, rs: list[int]) -> np.ndarray:
        if not rs:
            return idx
        r = rs[-1]
        return np.concatenate([order(idx[t::r], rs[:-1]) for t in range(r)])

    return order(np.arange(half), rs or radices(half))


def first_stage_dst(half: int, rs: list[int] | None = None) -> np.ndarray:
    """dst[n]: complex index of the r outputs of first-stage butterfly n (radix r = rs[0]), which
    reads inputs n + t*half/r."""
    rs = rs or radices(half)
    o = dit_order(half, rs)
    r = rs[0]
    q = half // r
    dst = np.empty(q, np.int64)
    for g in range(q):
        n = int(o[r * g])
        assert all(o[r * g + t] == n + t * q for t in range(r))
        dst[n] = r * g
    return dst


def first_out_pointers(params: FeatureParams) -> int:
    """G when the radix-8 first stage's blocks follow dst[n] = dst[n mod G] + 8 (n div G) with
    G <= 4 dividing both butterfly loops (then G output pointers, each stepping by its block,
    replace the first_dst look-ups); 0 otherwise."""
    rs = plan_radices(params)
    if rs[0] != 8:
        return 0
    half = params.fft_size // 2
    q = half // 8
    dst = first_stage_dst(half, rs)
    full = first_stage_full(params, 8)
    for g in (1, 2, 4):
        if (q % g == 0 and full % g == 0
                and all(dst[n] == dst[n % g] + 8 * (n // g) for n in range(q))):
            return g
    return 0


def first_stage_full(params: FeatureParams, r: int | None = None) -> int:
    """First-stage butterflies n (radix r, default the plan's) whose last input, complex sample
    n + (r-1)*HALF/r, is not wholly zero padding; the C skips that input for the rest."""
    r = r or plan_radices(params)[0]
    q = params.fft_size // 2 // r
    return min(q, max(0, window_complex(params) - (r - 1) * q))


def samples_read(params: FeatureParams) -> int:
    """Complex samples the first stage reads (the sample buffer's length in pairs): the window,
    and for a radix-4 first stage at least its first 3 inputs of every butterfly (zero padding
    the buffer keeps zero when the window is shorter)."""
    r = plan_radices(params)[0]
    q = params.fft_size // 2 // r
    return max(window_complex(params), (r - 1) * q)


def is_fused(rs: list[int]) -> bool:
    """Whether the last of these stages (radix 4 of span HALF, q = HALF/4 >= 4) is fused with
    the real split: its butterflies j and q - j give the 8 points of the split pairs k = j,
    q + j, q - j, 2q - j (with HALF - k), so that pass stores no complex points
    (`last_twiddles`)."""
    return len(rs) >= 2 and rs[-1] == 4 and int(np.prod(rs)) >= 16


def fused_last_stage(half: int, first8: bool = True) -> bool:
    return is_fused(radices(half, first8))


def middle_stages(rs: list[int]) -> list[tuple[int, int]]:
    """(radix, q) of the stages after the first and before a fused last one (q: butterflies
    per group, span r * q)."""
    out, q = [], rs[0]
    for r in rs[1:-1] if is_fused(rs) else rs[1:]:
        out.append((r, q))
        q *= r
    return out


def stage_twiddles(half: int, rs: list[int] | None = None) -> np.ndarray:
    """Twiddles of the stages after the first but a fused last one, contiguous per stage and
    j = 1..q-1 (j = 0 is 1): radix r (span rq): cos, sin of 2*pi*j*m/(rq) for m = 1 .. r-1.
    A twiddle is cos - i*sin."""
    out: list[float] = []
    for r, q in middle_stages(rs or radices(half)):
        for j in range(1, q):
            out += radix_twiddle(j, q, r)
    return np.array(out, np.float64)


def radix_twiddle(j: int, q: int, r: int) -> list[float]:
    """cos, sin of 2*pi*j*m/(rq), m = 1 .. r-1."""
    a = 2 * np.pi * j * np.arange(1, r) / (r * q)
    return list(np.stack([np.cos(a), np.sin(a)], axis=1).ravel())


def radix4_twiddle(j: int, q: int) -> list[float]:
    """cos, sin of 2*pi*j*m/(4q), m = 1, 2, 3."""
    return radix_twiddle(j, q, 4)


def split_twiddle(k: int, fft_size: int) -> list[float]:
    a = 2 * np.pi * k / fft_size
    return [np.cos(a), np.sin(a)]


LAST_POWERS = (-1, 1, 3, 5, 2, 4, 6)
"""Powers a of V = exp(-2 pi i j / FFT_SIZE) the fused last step j uses: V^(2b-1) turn the
sums of its butterflies' inputs (b = 0..3), V^(2b) their differences (b = 1..3)."""


def last_walk(rs: list[int]) -> dict | None:
    """How the fused last stage walks its steps when the stage before it is radix 8.

    That stage (span q = HALF/4, p = q/8 butterflies per group) then writes the 8 outputs of
    its butterfly j (points j + p k, k = 0..7) as one block at 8 j of its group's slot
    (`stage_plan` "to"), so point i of group b sits at b q + 8 (i mod p) + i div p. Step
    j = p c + d of the fused stage finds its points a_b at b q + 8 d + c and its partners
    c_b (points q - j) at b q + 8 (p - d) + 7 - c (d > 0) or b q + 8 - c (d = 0): along a
    "row" of one d they are one apart, up and down. Rows: d = 0 (steps p, 2p, .. < q/2) and
    d = 1 .. p-1 (`per_row` = 4 steps d, p + d, ..). Row p - d, taken with c downwards right
    after row d, finds its points where row d's partner pointers stopped and its partners where
    row d's pointers stopped (the directions swap), so the pointers go on without a jump.
    `order`: the steps in the order the C takes them (row 0, rows d and p - d for d = 1 ..
    p/2-1, row p/2). None when the stage before is not radix 8: the stages then run in place,
    in natural order."""
    if not (is_fused(rs) and len(rs) >= 3 and rs[-2] == 8):
        return None
    half = int(np.prod(rs))
    q = half // 4
    p = q // 8
    if p < 2:
        return None
    per_row = q // 2 // p  # 4: q = 8p
    order = [p * c for c in range(1, per_row)]
    for d in range(1, p // 2):
        order += [p * c + d for c in range(per_row)]
        order += [p * c + p - d for c in reversed(range(per_row))]
    order += [p * c + p // 2 for c in range(per_row)]
    return {"q": q, "p": p, "per_row": per_row, "order": order}


def walk_skips(walk: dict, skip: int) -> dict:
    """Which steps of the walk's rows leave out bin HALF - j (j < `last_skip`), alike for all
    the rows the C loops over: `row0` (c = 0 .. per_row-1, c = 0 unused), `up` (rows d =
    1 .. p/2-1, c upwards), `down` (their partner rows p - d, c downwards: c = per_row-1 first),
    `mid` (row p/2)."""
    p, n = walk["p"], walk["per_row"]
    ds = range(1, p // 2)
    return {"row0": [p * c < skip for c in range(n)],
            "up": [all(p * c + d < skip for d in ds) for c in range(n)],
            "down": [all(p * c + p - d < skip for d in ds) for c in reversed(range(n))],
            "mid": [p * c + p // 2 < skip for c in range(n)]}


def last_order(rs: list[int]) -> list:
    """What the fused last stage does, in the order the C does it: steps j (ints), "zero"
    (butterfly 0: bins 0, q, HALF/2, 3q, HALF) and "mid" (butterfly q/2: bins q/2, 3q/2, 5q/2,
    7q/2). A walk takes butterfly 0 before row 0 and q/2 after it (their points lie at the
    row's start and end); otherwise both come last."""
    walk = last_walk(rs)
    q = int(np.prod(rs)) // 4
    if not walk:
        return list(range(1, q // 2)) + ["zero", "mid"]
    order = walk["order"]
    row0 = walk["per_row"] - 1
    return ["zero", *order[:row0], "mid", *order[row0:]]


def last_twiddles(fft_size: int, order: list | None = None) -> np.ndarray:
    """Tables of the fused last stage + split (q = fft_size / 8), in the order the C reads them
    (`order`, default: last_order of the natural order): per step j cos, sin of 2 pi a j /
    FFT_SIZE for a in LAST_POWERS; for "zero" the split twiddle of k = q; for "mid" the
    radix-4 twiddles of q/2 and the split twiddles of k = q/2, 3q/2."""
    q = fft_size // 8
    out: list[float] = []
    for item in order or [*range(1, q // 2), "zero", "mid"]:
        if item == "zero":
            out += split_twiddle(q, fft_size)
        elif item == "mid":
            out += radix4_twiddle(q // 2, q)
            for k in (q // 2, 3 * q // 2):
                out += split_twiddle(k, fft_size)
        else:
            for a in LAST_POWERS:
                out += split_twiddle(a * item, fft_size)
    return np.array(out, np.float64)


def split_twiddles(fft_size: int) -> np.ndarray:
    """cos, sin of 2*pi*k/fft_size for k = 1 .. fft_size/4 - 1 (interleaved)."""
    k = np.arange(1, fft_size // 4)
    a = 2 * np.pi * k / fft_size
    return np.stack([np.cos(a), np.sin(a)], axis=1).ravel()


def window_table(params: FeatureParams) -> np.ndarray:
    """The scaled window in the order stage 1 reads it: per butterfly n, per input t that it
    reads (all r, or r - 1 from butterfly first_stage_full on), the window at samples
    2(n + t*HALF/r) and 2(n + t*HALF/r) + 1; zero past the window (the zero padding)."""
    n_fft = params.fft_size
    w = np.zeros(n_fft, np.float64)
    w[: params.window_samples] = reference.window(params) * SAMPLE_SCALE
    r = plan_radices(params)[0]
    q = n_fft // 2 // r
    full = first_stage_full(params, r)
    idx = [2 * (n + t * q) + c for n in range(q) for t in range(r if n < full else r - 1)
           for c in range(2)]
    return w[np.array(idx)]


LOG_SERIES = (0.666534, 0.412888)
"""c3, c5 of the C log's log(m) = t (2 + t^2 (c3 + t^2 c5)), t = (m-1)/(m+1), |t| <= (sqrt 2 - 1) /
(sqrt 2 + 1): a minimax fit of 2 atanh(t) - 2t there (Lawson-weighted least squares), absolute
error 3.5e-8, far below what float32 rounding of log values of about 1 adds. Two terms fewer
than the Taylor series to t^9 for the same accuracy (tests/features check the bound)."""

MEL_CHUNK_REGS = 24
"""FPU registers a chunk of the C mel stream loads (s0 .. s23: its weights, then its powers):
8 bins of two bands or 12 of one at a time."""
MEL_CHUNK_DONE = 3
"""Bands a chunk may complete (more logs after one chunk cost more than the loads saved)."""


def mel_stream(params: FeatureParams) -> tuple[list[dict], np.ndarray]:
    """(chunks, weights) of the FPU builds' mel sums, which walk the bins upwards once.

    Each bin lies in one band or in two neighbouring ones (b, b+1), so a pass over the bins
    updates at most two running sums: band b's in accumulator b % 2 (band b + 2 starts after
    band b's last product). Bins come in chunks whose weights and powers fill at most
    MEL_CHUNK_REGS registers and that complete at most MEL_CHUNK_DONE bands; per chunk: `bin` (its first bin), `n` (bins), `nw` (weights, stored in the order
    the chunk uses them: per bin its bands' weights, lower band first), `ops` (per product:
    accumulator, weight index, power index, whether it starts its band, and `last`: the band
    it completes, whose sum leaves through output `slot` and whose log is taken after the
    chunk), `done` (bands it completes). Every band still sums its products in bin order, so
    the sums are those of the per-band loop."""
    first, count, offset, weights = sparse_mel(params)
    per_bin: dict[int, list[tuple[int, float]]] = {}
    for band, (lo, n, off) in enumerate(zip(first, count, offset)):
        for i in range(int(n)):
            per_bin.setdefault(int(lo) + i, []).append((band, float(weights[off + i])))
    last_bin = {band: int(lo + n - 1) for band, (lo, n) in enumerate(zip(first, count)) if n}
    chunks: list[dict] = []
    table: list[float] = []
    started: set[int] = set()
    for k in sorted(per_bin):
        bands = tuple(b for b, _ in per_bin[k])
        # slaney triangles: a bin is in band b and at most b + 1, and band b + 2 starts only
        # after band b's last bin (so b and b + 2 can share an accumulator)
        if len(bands) > 2 or (len(bands) == 2 and bands[1] != bands[0] + 1) or any(
                b - 2 in last_bin and last_bin[b - 2] >= k for b in bands):
            raise ValueError(f"mel bin {k} lies in bands {bands}: not a chain of triangles")
        c = chunks[-1] if chunks else None
        if (c is None or c["n"] + c["nw"] + 1 + len(bands) > MEL_CHUNK_REGS
                or c["done"] >= MEL_CHUNK_DONE or c["bin"] + c["n"] != k):
            jump = not chunks or chunks[-1]["bin"] + chunks[-1]["n"] != k
            c = {"bin": k, "n": 0, "nw": 0, "ops": [], "jump": jump, "done": 0}
            chunks.append(c)
        for band, w in per_bin[k]:
            done = last_bin[band] == k
            c["ops"].append({"acc": band % 2, "w": c["nw"], "p": c["n"],
                             "first": band not in started,
                             "last": band if done else None, "slot": c["done"]})
            c["done"] += done
            started.add(band)
            table.append(w)
            c["nw"] += 1
        c["n"] += 1
    # bands with no bin at all are log(floor): the C writes them before the stream
    return chunks, np.array(table, np.float32)


def fft_model(frame: np.ndarray, fft_size: int, window_samples: int | None = None) -> np.ndarray:
    """Power spectrum (times POWER_SCALE) of a real frame [fft_size] (zero from window_samples
    on) computed with the C algorithm's stages and tables, in float64."""
    half = fft_size // 2
    rs = radices(half, first_radix8_fits(fft_size, window_samples or fft_size))
    x = np.asarray(frame, np.float64)
    zin = x[0::2] + 1j * x[1::2]
    r1 = rs[0]
    q1 = half // r1
    z = np.empty(half, np.complex128)
    for n, d in enumerate(first_stage_dst(half, rs)):
        z[d : d + r1] = _dft([zin[n + t * q1] for t in range(r1)])
    tw = stage_twiddles(half, rs)
    pos = 0
    for r, q in middle_stages(rs):
        for j in range(q):
            ws = tw[pos : pos + 2 * (r - 1)] if j else None
            pos += 2 * (r - 1) if j else 0
            _butterflies(z, j, q, r, half, ws)
    power = np.empty(half + 1)
    if is_fused(rs):
        _fused_last(z, power, fft_size, last_order(rs))
        return power
    sp = split_twiddles(fft_size)
    st = {k: sp[2 * k - 2 : 2 * k] for k in range(1, half // 2)}
    _split(z, power, range(1, half // 2), st)
    power[0] = (2 * (z[0].real + z[0].imag)) ** 2
    power[half] = (2 * (z[0].real - z[0].imag)) ** 2
    power[half // 2] = 4 * abs(z[half // 2]) ** 2
    return power


def _dft(v: list) -> np.ndarray:
    r = len(v)
    m = np.arange(r)
    return np.exp(-2j * np.pi * np.outer(m, m) / r) @ np.asarray(v, np.complex128)


def _split(z: np.ndarray, power: np.ndarray, ks, st: dict) -> None:
    """Split pairs k (and HALF - k) from z[k], z[HALF - k] with the split twiddles st[k]."""
    half = len(z)
    for k in ks:
        zk, ym = z[k], np.conj(z[half - k])
        even, odd = zk + ym, -1j * (zk - ym)
        p = (st[k][0] - 1j * st[k][1]) * odd
        power[k] = abs(even + p) ** 2
        power[half - k] = abs(even - p) ** 2


def _fused_last(z: np.ndarray, power: np.ndarray, fft_size: int, order: list) -> None:
    """The fused last stage as the C computes it. Step j takes a_b = z[j + bq] and
    c_b = z[q - j + bq] (b = 0..3). With V = exp(-2 pi i j / FFT_SIZE), the split pairs k = j + mq
    (m = 0..3) are E_m +- P_m where E = DFT4(V^2b (a + conj c)), P_m = -i V W8^m D_m and
    D = DFT4(V^2b (a - conj c)) (W8 = exp(-i pi/4)); only their powers are needed, so both are
    turned by conj(V): E'_m = DFT4(V^(2b-1) (a_b + conj c_b)), Q_m = -i W8^m D_m, and
    power[k] = |E'_m + Q_m|^2, power[HALF - k] = |E'_m - Q_m|^2. W8^m is 1, (1-i)/sqrt2, -i,
    (-1-i)/sqrt2: two of the four cost nothing, so the step needs 7 twiddles instead of 10."""
    half = len(z)
    q = half // 4
    lt = last_twiddles(fft_size, order)
    w = {a: None for a in LAST_POWERS}
    w8 = np.exp(-0.25j * np.pi * np.arange(4))
    pos = 0
    assert sorted(j for j in order if isinstance(j, int)) == list(range(1, q // 2))
    out = z.copy()  # the C leaves z alone: butterflies 0 and q/2 are kept in registers
    for j in order:
        if j == "zero":
            st = {q: lt[pos : pos + 2]}
            pos += 2
            _butterflies(out, 0, q, 4, half, None)
            _split(out, power, (q,), st)
            power[0] = (2 * (out[0].real + out[0].imag)) ** 2
            power[half] = (2 * (out[0].real - out[0].imag)) ** 2
            power[half // 2] = 4 * abs(out[half // 2]) ** 2
            continue
        if j == "mid":
            _butterflies(out, q // 2, q, 4, half, lt[pos : pos + 6])
            st = {q // 2: lt[pos + 6 : pos + 8], 3 * q // 2: lt[pos + 8 : pos + 10]}
            pos += 10
            _split(out, power, (q // 2, 3 * q // 2), st)
            continue
        for a in LAST_POWERS:
            w[a] = lt[pos] - 1j * lt[pos + 1]
            pos += 2
        a_ = np.array([z[j + b * q] for b in range(4)])
        c_ = np.conj(np.array([z[q - j + b * q] for b in range(4)]))
        s = (a_ + c_) * np.array([w[-1], w[1], w[3], w[5]])
        d = (a_ - c_) * np.array([1.0, w[2], w[4], w[6]])
        e, dd = _dft(list(s)), _dft(list(d))
        qq = -1j * w8 * dd
        for m in range(4):
            power[j + m * q] = abs(e[m] + qq[m]) ** 2
            power[half - j - m * q] = abs(e[m] - qq[m]) ** 2


def _butterflies(z: np.ndarray, j: int, q: int, r: int, half: int, c) -> None:
    """The radix-r butterflies j of span r*q over z, in place; c = (cos, sin) x (r-1) or None
    (j = 0: untwiddled)."""
    w = [1.0] * r if c is None else [1.0] + [c[2 * m] - 1j * c[2 * m + 1] for m in range(r - 1)]
    for g in range(j, half, r * q):
        z[g : g + r * q : q] = _dft([z[g + m * q] * w[m] for m in range(r)])


def stage_plan(rs: list[int]) -> tuple[list[dict], int | None]:
    """([{radix, span, q, groups, tw, to}] of the radix-8 / radix-4 stages after the first but a
    fused last one, offset of a last radix-2 stage's twiddles or None): what the template
    prints one function per stage for. `to`: the stage writes each butterfly's outputs as one
    block one group slot down (`last_walk`) instead of in place."""
    half = int(np.prod(rs))
    stages, tw, radix2 = [], 0, None
    mids = middle_stages(rs)
    for i, (r, q) in enumerate(mids):
        if r == 2:
            radix2 = tw
        else:
            stages.append({"radix": r, "span": r * q, "q": q, "groups": half // (r * q), "tw": tw,
                           "to": i == len(mids) - 1 and last_walk(rs) is not None})
        tw += 2 * (r - 1) * (q - 1)
    return stages, radix2


def last_skip(params: FeatureParams) -> int:
    """Fused last-stage steps j < this leave out bin HALF - j, which no mel band uses (at least 1:
    no step skips)."""
    first, count, _, _ = sparse_mel(params)
    top = max((int(lo + n - 1) for lo, n in zip(first, count) if n), default=0)
    half = params.fft_size // 2
    return int(min(half // 8, max(1, half - top)))


def context(params: FeatureParams) -> dict:
    half = params.fft_size // 2
    rs = plan_radices(params)
    stages, radix2_tw = stage_plan(rs)
    fused = is_fused(rs)
    walk = last_walk(rs)
    skip = last_skip(params) if fused else 1
    first, count, offset, weights = sparse_mel(params)
    mel_chunks, mel_stream_weights = mel_stream(params)
    return {
        "sample_rate_hz": params.sample_rate_hz,
        "window_samples": params.window_samples,
        "hop_samples": params.hop_samples,
        "fft_size": params.fft_size,
        "fft_bins": params.fft_bins,
        "mel_bands": params.mel_bands,
        "log_floor": c_float(params.log_floor),
        "log_floor_bits": f"0x{int(np.float32(params.log_floor).view(np.uint32)):08x}",
        "half_fft": half,
        "mel_weight_count": len(weights),
        "mel_chunks": mel_chunks,
        "mel_slots": max((c["done"] for c in mel_chunks), default=0),
        "mel_empty_bands": [b for b, n in enumerate(count) if n == 0],
        "mel_stream_weight_count": len(mel_stream_weights),
        # / POWER_SCALE as for mel_weight_rows: the very same float32 weights, reordered
        "mel_stream_weight_rows": float_rows(mel_stream_weights / np.float32(POWER_SCALE)),
        "log_c3": c_float(LOG_SERIES[0]),
        "log_c5": c_float(LOG_SERIES[1]),
        "stage_twiddle_count": len(stage_twiddles(half, rs)),
        "stages": stages,
        "radix8_stages": any(st["radix"] == 8 for st in stages),
        "radix8_inplace": any(st["radix"] == 8 and not st["to"] for st in stages),
        "radix8_to": any(st["radix"] == 8 and st["to"] for st in stages),
        "first_radix": rs[0],
        "first_full": first_stage_full(params, rs[0]),
        "first_outs": first_out_pointers(params),
        "first_out_dst": [int(v) for v in first_stage_dst(half, rs)[:4]],
        "sample_buf": 2 * samples_read(params),
        "sqrt1_2": c_float(np.sqrt(0.5)),
        "radix2_tw": radix2_tw,
        "window_count": len(window_table(params)),
        "window_rows": float_rows(window_table(params)),
        "first_dst_rows": int_rows(first_stage_dst(half, rs)),
        "stage_twiddle_rows": float_rows(stage_twiddles(half, rs)),
        "fused_last": fused,
        "last_q": half // 4,
        "last_skip": skip,
        # bins 0 and HALF: only computed when a mel band uses them
        "power_bin0": bool(any(lo == 0 and n for lo, n in zip(first, count))),
        "power_top": bool(any(lo + n - 1 >= half and n for lo, n in zip(first, count))),
        "last_twiddle_count": len(last_twiddles(params.fft_size)) if fused else 0,
        "last_twiddle_rows": (float_rows(last_twiddles(params.fft_size, last_order(rs)))
                              if fused else []),
        "walk": walk,
        # the walk's slot shift (a group's q points), and which steps of a row skip bin HALF - j
        "z_shift": walk["q"] if walk else 0,
        "walk_skips": walk_skips(walk, skip) if walk else {},

        "split_twiddle_rows": float_rows(split_twiddles(params.fft_size)),
        "mel_first_rows": int_rows(first),
        "mel_count_rows": int_rows(count),
        "mel_offset_rows": int_rows(offset),
        # weights / POWER_SCALE: exact in float32 (a power of two), so bin-for-bin the products
        # are the same bits as weight * (power / 4)
        "mel_weight_rows": float_rows(weights / np.float32(POWER_SCALE)),
    }


def sources(params: FeatureParams, digest: str | None = None) -> dict[str, str]:
    """{file name: text} of the C front end for these parameters."""
    ctx = context(params)
    digest = digest or params.digest()
    return {name: render(tpl, ctx, digest) for name, tpl in TEMPLATES.items()}
