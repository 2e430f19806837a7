"""Read any reasonable audio file (WAV, FLAC, ...) as 16 kHz mono float32, or fail with a
one-line reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from kws.errors import AudioError

SAMPLE_RATE_HZ = 16000


def read_wav(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Return the file's samples as float32 in [-1, 1], mono, at `sample_rate_hz`.

    Accepts 8/16/24/32-bit integer and float WAVs of any rate and channel count:
    other rates are resampled (soxr, high quality), channels are averaged.
    Raises AudioError (path + reason) for anything unusable, so a caller can skip
    the file and go on.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    _check_wav_data_chunk(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(path, f"unreadable audio ({_short(exc)})") from None
    except OSError as exc:
        raise AudioError(path, f"cannot open ({exc.strerror or exc})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "audio holds NaN or Inf samples")
    # float64 mean: two channels near the float32 limit must not overflow to inf
    mono = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]
    mono = np.clip(mono, -1e6, 1e6)
    if rate != sample_rate_hz:
        mono = resample(mono, rate, sample_rate_hz)
        if len(mono) == 0:
            raise AudioError(path, f"too short: {data.shape[0]} samples at {rate} Hz is no "
                                   f"sample at {sample_rate_hz} Hz")
        if not np.all(np.isfinite(mono)):
            raise AudioError(path, "audio holds NaN or Inf samples after resampling")
    # Float WAVs may exceed full scale; int16 conversion later clips, so do it here once.
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


# A data chunk size meaning "unknown" (streamed writers fill it in later, or never).
UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)


def _check_wav_data_chunk(path: Path) -> None:
    """A RIFF/WAVE file whose data chunk holds fewer bytes than its header declares is cut
    off (e.g. an interrupted copy); libsndfile reads the part that is there, so without this
    check a clip of a few samples would become a near-silent training clip."""
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not a plain WAV (FLAC, RF64, ...): soundfile's checks apply
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return  # no data chunk: soundfile reports it
            declared = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                held = size - f.tell()
                if declared not in UNKNOWN_DATA_SIZES and held < declared:
                    raise AudioError(path, f"truncated: the data chunk declares {declared} "
                                           f"bytes but the file holds {held}")
                return
            f.seek(declared + (declared & 1), 1)  # chunks are padded to an even size


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (soxr 'HQ'), deterministic for the same input."""
    import soxr

    return soxr.resample(x.astype(np.float32, copy=False), rate_in, rate_out, quality="HQ")


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> int16 with round-to-nearest and clipping (what a PCM device delivers)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int16
    )


def write_wav(path: str | Path, x: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write 16-bit PCM mono; int16 input is written as is, float input is rounded first."""
    pcm = x if x.dtype == np.int16 else to_int16(x)
    sf.write(str(path), pcm, sample_rate_hz, subtype="PCM_16", format="WAV")


def fit_to_length(x: np.ndarray, n: int) -> np.ndarray:
    """Pad with zeros at the end (as Speech Commands clips are padded), or keep the loudest
    `n`-sample window of a longer recording so the spoken word is not cut off."""
    if len(x) == n:
        return x
    if len(x) < n:
        return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])
    energy = np.cumsum(np.concatenate([[0.0], x.astype(np.float64) ** 2]))
    window = energy[n:] - energy[:-n]
    start = int(np.argmax(window))
    return x[start : start + n]


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "Error opening" in text else text
