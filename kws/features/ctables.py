"""Everything the C front end needs, computed from FeatureParams, and its rendered sources.

The C FFT (firmware_templates/features/kws_features.c.j2) is a complex FFT of HALF = fft_size/2
points over (even, odd) sample pairs, untangled into the real spectrum afterwards:
- stage 1, radix 4, fused with the windowing: butterfly n reads complex samples n + t*HALF/4
  (t = 0..3) straight from the sample buffer and writes 4 adjacent outputs at `first_dst[n]`,
  so no separate bit-reversal pass is needed;
- radix-4 stages of span 16, 64, ... with per-stage contiguous twiddles (no index arithmetic),
  then one radix-2 stage when HALF is not a power of 4;
- the real split computes bins k and HALF - k together and only their power; when the last
  stage is radix 4 of span HALF (HALF >= 16) it is fused with the split (`fused_last_stage`,
  `last_twiddles`) and the last stage's complex outputs are never stored.
`fft_model` repeats those steps in numpy (float64) so tests can check the plan itself.
"""

from __future__ import annotations

import numpy as np

from kws.codegen.carrays import c_float, float_rows, int_rows
from kws.codegen.render import render
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


def radices(half: int) -> list[int]:
    """Stage radices of the HALF-point complex FFT, first stage first: 4, 4, ..., (2)."""
    if half < 4 or half & (half - 1):
        raise ValueError(f"the complex FFT needs a power of two >= 4 points, not {half}")
    out, span = [4], 4
    while span * 4 <= half:
        out.append(4)
        span *= 4
    if span < half:
        out.append(2)
    return out


def dit_order(half: int) -> np.ndarray:
    """order[p] = the input index the decimation-in-time stages expect at position p (mixed
    radix digit reversal for `radices(half)`)."""

    def order(idx: np.ndarray, rs: list[int]) -> np.ndarray:
        if not rs:
            return idx
        r = rs[-1]
        return np.concatenate([order(idx[t::r], rs[:-1]) for t in range(r)])

    return order(np.arange(half), radices(half))


def first_stage_dst(half: int) -> np.ndarray:
    """dst[n]: complex index of the 4 outputs of first-stage butterfly n, which reads inputs
    n + t*half/4."""
    o = dit_order(half)
    quarter = half // 4
    dst = np.empty(quarter, np.int64)
    for g in range(quarter):
        n = int(o[4 * g])
        assert all(o[4 * g + t] == n + t * quarter for t in range(4))
        dst[n] = 4 * g
    return dst


def first_stage_full(params: FeatureParams) -> int:
    """First-stage butterflies n whose last input, samples 2n + 3*fft_size/4 (+1), is not
    wholly zero padding; the C skips that input for the rest."""
    quarter = params.fft_size // 8
    return min(quarter, max(0, -(-(params.window_samples - 3 * params.fft_size // 4) // 2)))


def fused_last_stage(half: int) -> bool:
    """Whether the last stage (radix 4 of span HALF, q = HALF/4 >= 4) is fused with the real
    split: its butterflies j and q - j give the 8 points of the split pairs k = j, q + j, q - j,
    2q - j (with HALF - k), so that pass stores no complex points (`last_twiddles`)."""
    rs = radices(half)
    return len(rs) >= 2 and rs[-1] == 4 and half >= 16


def stage_twiddles(half: int) -> np.ndarray:
    """Twiddles of the stages after the first but a fused last one, contiguous per stage and
    j = 1..q-1 (j = 0 is 1): radix 4 (span 4q): cos, sin of 2*pi*j*m/(4q) for m = 1, 2, 3;
    radix 2 (span 2q): cos, sin of 2*pi*j/(2q). A twiddle is cos - i*sin."""
    out: list[float] = []
    q = 4
    rs = radices(half)[1:]
    if fused_last_stage(half):
        rs = rs[:-1]
    for r in rs:
        for j in range(1, q):
            out += radix4_twiddle(j, q) if r == 4 else radix2_twiddle(j, q)
        q *= r
    return np.array(out, np.float64)


def radix4_twiddle(j: int, q: int) -> list[float]:
    """cos, sin of 2*pi*j*m/(4q), m = 1, 2, 3."""
    a = 2 * np.pi * j * np.arange(1, 4) / (4 * q)
    return list(np.stack([np.cos(a), np.sin(a)], axis=1).ravel())


def radix2_twiddle(j: int, q: int) -> list[float]:
    a = 2 * np.pi * j / (2 * q)
    return [np.cos(a), np.sin(a)]


def split_twiddle(k: int, fft_size: int) -> list[float]:
    a = 2 * np.pi * k / fft_size
    return [np.cos(a), np.sin(a)]


def last_twiddles(fft_size: int) -> np.ndarray:
    """Tables of the fused last stage + split (q = fft_size / 8), in the order the C reads them:
    per step j = 1 .. q/2 - 1: radix-4 twiddles of j and of q - j (6 each), split twiddles of
    k = j, q + j, q - j, 2q - j (2 each); then the step of butterflies 0 and q/2: radix-4
    twiddles of q/2, split twiddles of k = q/2, q, 3q/2."""
    q = fft_size // 8
    out: list[float] = []
    for j in range(1, q // 2):
        out += radix4_twiddle(j, q) + radix4_twiddle(q - j, q)
        for k in (j, q + j, q - j, 2 * q - j):
            out += split_twiddle(k, fft_size)
    out += radix4_twiddle(q // 2, q)
    for k in (q // 2, q, 3 * q // 2):
        out += split_twiddle(k, fft_size)
    return np.array(out, np.float64)


def split_twiddles(fft_size: int) -> np.ndarray:
    """cos, sin of 2*pi*k/fft_size for k = 1 .. fft_size/4 - 1 (interleaved)."""
    k = np.arange(1, fft_size // 4)
    a = 2 * np.pi * k / fft_size
    return np.stack([np.cos(a), np.sin(a)], axis=1).ravel()


def window_table(params: FeatureParams) -> np.ndarray:
    """The scaled window in the order stage 1 reads it: [n][re, im][t] for sample
    2n + t*fft_size/4 (+1), zero past the window (the zero padding)."""
    n_fft = params.fft_size
    w = np.zeros(n_fft, np.float64)
    w[: params.window_samples] = reference.window(params) * SAMPLE_SCALE
    quarter = n_fft // 8  # complex points per quarter
    idx = [2 * n + t * (n_fft // 4) + c for n in range(quarter) for c in range(2) for t in range(4)]
    return w[np.array(idx)]


LOG_SERIES = (0.666534, 0.412888)
"""c3, c5 of the C log's log(m) = t (2 + t^2 (c3 + t^2 c5)), t = (m-1)/(m+1), |t| <= (sqrt 2 - 1) /
(sqrt 2 + 1): a minimax fit of 2 atanh(t) - 2t there (Lawson-weighted least squares), absolute
error 3.5e-8, far below what float32 rounding of log values of about 1 adds. Two terms fewer
than the Taylor series to t^9 for the same accuracy (tests/features check the bound)."""

MEL_CHUNK_BINS = 8
"""Bins the C mel stream loads at a time (8 powers and up to 16 weights: 24 FPU registers)."""


def mel_stream(params: FeatureParams) -> tuple[list[dict], np.ndarray]:
    """(chunks, weights) of the FPU builds' mel sums, which walk the bins upwards once.

    Each bin lies in one band or in two neighbouring ones (b, b+1), so a pass over the bins
    updates at most two running sums: band b's in accumulator b % 2. Bins come in chunks of
    up to MEL_CHUNK_BINS that never straddle a change of the bands a bin lies in; per chunk:
    `bin` (its first bin), `n` (bins), `nw` (weights, stored in the order the chunk uses them:
    per bin its bands' weights, lower band first), `ops` (per product: accumulator, weight
    index, power index, whether it starts its band, and `last`: the band it completes, whose
    log is taken right after it). Every band still
    sums its products in bin order, so the sums are those of the per-band loop."""
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
        if (c is None or c["bands"] != bands or c["n"] == MEL_CHUNK_BINS
                or c["bin"] + c["n"] != k):
            jump = not chunks or chunks[-1]["bin"] + chunks[-1]["n"] != k
            c = {"bin": k, "n": 0, "nw": 0, "bands": bands, "ops": [], "jump": jump}
            chunks.append(c)
        for band, w in per_bin[k]:
            c["ops"].append({"acc": band % 2, "w": c["nw"], "p": c["n"],
                             "first": band not in started,
                             "last": band if last_bin[band] == k else None})
            started.add(band)
            table.append(w)
            c["nw"] += 1
        c["n"] += 1
    # bands with no bin at all are log(floor): the C writes them before the stream
    return chunks, np.array(table, np.float32)


def fft_model(frame: np.ndarray, fft_size: int) -> np.ndarray:
    """Power spectrum (times POWER_SCALE) of a real frame [fft_size] computed with the C
    algorithm's stages and tables, in float64."""
    half = fft_size // 2
    x = np.asarray(frame, np.float64)
    zin = x[0::2] + 1j * x[1::2]
    quarter = half // 4
    z = np.empty(half, np.complex128)
    for n, d in enumerate(first_stage_dst(half)):
        a, b, c, e = (zin[n + t * quarter] for t in range(4))
        t0, t1, t2, t3 = a + c, a - c, b + e, b - e
        z[d : d + 4] = [t0 + t2, t1 - 1j * t3, t0 - t2, t1 + 1j * t3]
    tw = stage_twiddles(half)
    fused = fused_last_stage(half)
    rs = radices(half)[1:]
    pos, q = 0, 4
    for r in rs[:-1] if fused else rs:
        for j in range(q):
            ws = tw[pos : pos + 2 * (r - 1)] if j else None
            pos += 2 * (r - 1) if j else 0
            _butterflies(z, j, q, r, half, ws)
        q *= r
    st = {k: split_twiddle(k, fft_size) for k in range(1, half // 2)}
    if fused:
        # the last stage's and the split's twiddles as the fused C reads them
        lt, q, ws4, pos = last_twiddles(fft_size), half // 4, {}, 0
        for j in range(1, q // 2):
            ws4[j], ws4[q - j] = lt[pos : pos + 6], lt[pos + 6 : pos + 12]
            for i, k in enumerate((j, q + j, q - j, 2 * q - j)):
                st[k] = lt[pos + 12 + 2 * i : pos + 14 + 2 * i]
            pos += 20
        ws4[q // 2] = lt[pos : pos + 6]
        for i, k in enumerate((q // 2, q, 3 * q // 2)):
            st[k] = lt[pos + 6 + 2 * i : pos + 8 + 2 * i]
        for j in range(q):
            _butterflies(z, j, q, 4, half, ws4[j] if j else None)
    else:
        sp = split_twiddles(fft_size)
        st = {k: sp[2 * k - 2 : 2 * k] for k in range(1, half // 2)}
    power = np.empty(half + 1)
    power[0] = (2 * (z[0].real + z[0].imag)) ** 2
    power[half] = (2 * (z[0].real - z[0].imag)) ** 2
    power[half // 2] = 4 * abs(z[half // 2]) ** 2
    for k in range(1, half // 2):
        zk, ym = z[k], np.conj(z[half - k])
        even, odd = zk + ym, -1j * (zk - ym)
        p = (st[k][0] - 1j * st[k][1]) * odd
        power[k] = abs(even + p) ** 2
        power[half - k] = abs(even - p) ** 2
    return power


def _butterflies(z: np.ndarray, j: int, q: int, r: int, half: int, c) -> None:
    """The radix-r butterflies j of span r*q over z, in place; c = (cos, sin) x (r-1) or None
    (j = 0: untwiddled)."""
    w = [1.0] * r if c is None else [1.0] + [c[2 * m] - 1j * c[2 * m + 1] for m in range(r - 1)]
    for g in range(j, half, r * q):
        v = [z[g + m * q] * w[m] for m in range(r)]
        if r == 4:
            t0, t1, t2, t3 = v[0] + v[2], v[0] - v[2], v[1] + v[3], v[1] - v[3]
            z[g], z[g + q], z[g + 2 * q], z[g + 3 * q] = (
                t0 + t2, t1 - 1j * t3, t0 - t2, t1 + 1j * t3)
        else:
            z[g], z[g + q] = v[0] + v[1], v[0] - v[1]


def stage_plan(half: int) -> tuple[list[dict], int | None]:
    """([{span, q, groups, tw}] of the radix-4 stages after the first but a fused last one,
    offset of the radix-2 stage's twiddles or None): what the template prints one function per
    stage for."""
    stages, tw, q = [], 0, 4
    radix2 = None
    rs = radices(half)[1:]
    if fused_last_stage(half):
        rs = rs[:-1]
    for r in rs:
        if r == 4:
            stages.append({"span": 4 * q, "q": q, "groups": half // (4 * q), "tw": tw})
        else:
            radix2 = tw
        tw += 2 * (r - 1) * (q - 1)
        q *= r
    return stages, radix2


def context(params: FeatureParams) -> dict:
    half = params.fft_size // 2
    radix4_stages, radix2_tw = stage_plan(half)
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
        "mel_empty_bands": [b for b, n in enumerate(count) if n == 0],
        "mel_stream_weight_count": len(mel_stream_weights),
        # / POWER_SCALE as for mel_weight_rows: the very same float32 weights, reordered
        "mel_stream_weight_rows": float_rows(mel_stream_weights / np.float32(POWER_SCALE)),
        "log_c3": c_float(LOG_SERIES[0]),
        "log_c5": c_float(LOG_SERIES[1]),
        "stage_twiddle_count": len(stage_twiddles(half)),
        "radix4_stages": radix4_stages,
        "first_full": first_stage_full(params),
        "radix2_tw": radix2_tw,
        "window_rows": float_rows(window_table(params)),
        "first_dst_rows": int_rows(first_stage_dst(half)),
        "stage_twiddle_rows": float_rows(stage_twiddles(half)),
        "fused_last": fused_last_stage(half),
        "last_q": half // 4,
        "last_twiddle_count": len(last_twiddles(params.fft_size)) if fused_last_stage(half) else 0,
        "last_twiddle_rows": (float_rows(last_twiddles(params.fft_size))
                              if fused_last_stage(half) else []),
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
