"""`FeatureParams`: the single definition both feature implementations are built from."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from kws.config import Frozen
from kws.errors import KwsError


class FeatureParams(Frozen):
    """Log-mel front end shared by training (librosa) and the device (generated C).

    Frame i covers samples [i*hop, i*hop + window) with no centering, so the device can emit a
    frame as soon as its last sample arrives. Stored verbatim in the model manifest.
    """

    sample_rate_hz: int = Field(16000, gt=0)
    """Audio rate every input is resampled to; the board's microphone must deliver it."""

    window_ms: float = Field(30.0, gt=0)
    """Analysis window length; must be a whole number of samples and fit in the FFT."""

    hop_ms: float = Field(20.0, gt=0)
    """Stride between frames; one model step runs per hop (50 steps per second at 20 ms)."""

    fft_size: int = Field(512, gt=0)
    """Real FFT length (power of two); the window is zero-padded at its end up to this."""

    mel_bands: int = Field(40, gt=0)
    """Number of triangular mel filters (librosa 'slaney' scale and area normalization)."""

    fmin_hz: float = Field(20.0, ge=0)
    """Lower edge of the lowest mel filter."""

    fmax_hz: float = Field(7600.0, gt=0)
    """Upper edge of the highest mel filter; at most the Nyquist frequency."""

    window: Literal["hann"] = "hann"
    """Periodic Hann window (librosa's `get_window('hann', n, fftbins=True)`)."""

    log_floor: float = Field(1e-8, ge=1e-30)
    """Mel power is clamped to this before the natural log. 1e-8 is about the power int16
    quantization noise leaves in a band: below it there is no signal, only float32 rounding
    noise that would make host and device features disagree (measured: floor 1e-10 gives
    1.8e-3 max log difference on the shared clips, 1e-8 gives 4.7e-4)."""

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureParams":
        win, hop = self.window_ms * self.sample_rate_hz / 1000, self.hop_ms * self.sample_rate_hz / 1000
        if abs(win - round(win)) > 1e-9 or abs(hop - round(hop)) > 1e-9:
            raise ValueError(
                f"window_ms={self.window_ms} and hop_ms={self.hop_ms} must be whole numbers of "
                f"samples at {self.sample_rate_hz} Hz"
            )
        if self.fft_size & (self.fft_size - 1) or self.fft_size < 16:
            raise ValueError(f"fft_size={self.fft_size} must be a power of two >= 16")
        if round(win) > self.fft_size:
            raise ValueError(
                f"window of {round(win)} samples ({self.window_ms} ms) is longer than "
                f"fft_size={self.fft_size}"
            )
        if round(hop) > round(win):
            raise ValueError(f"hop_ms={self.hop_ms} is longer than window_ms={self.window_ms}")
        nyquist = self.sample_rate_hz / 2
        if self.fmax_hz > nyquist:
            raise ValueError(f"fmax_hz={self.fmax_hz} is above the Nyquist frequency {nyquist:g} Hz")
        if self.fmin_hz >= self.fmax_hz:
            raise ValueError(f"fmin_hz={self.fmin_hz} must be below fmax_hz={self.fmax_hz}")
        if self.mel_bands > self.fft_size // 2:
            raise ValueError(f"mel_bands={self.mel_bands} exceeds the {self.fft_size // 2} FFT bins")
        return self

    @classmethod
    def create(cls, **values) -> "FeatureParams":
        """Validate with a one-line KwsError instead of pydantic's multi-line report."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise KwsError(f"feature parameters: {where + ': ' if where else ''}{msg}") from None

    @property
    def window_samples(self) -> int:
        return round(self.window_ms * self.sample_rate_hz / 1000)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_ms * self.sample_rate_hz / 1000)

    @property
    def fft_bins(self) -> int:
        return self.fft_size // 2 + 1

    def frames_for(self, n_samples: int) -> int:
        """Frames in `n_samples` of audio (49 for 1 s at the defaults)."""
        if n_samples < self.window_samples:
            return 0
        return 1 + (n_samples - self.window_samples) // self.hop_samples

    def digest(self) -> str:
        """sha256 of the canonical JSON; names the parameter set in generated files."""
        text = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
