"""FeatureParams validation: every bad combination is refused with a clear one-line reason."""

import pytest

from kws.errors import KwsError
from kws.features.params import FeatureParams


def test_defaults_match_design():
    p = FeatureParams()
    assert (p.window_samples, p.hop_samples, p.fft_size, p.mel_bands) == (480, 320, 512, 40)
    assert p.frames_for(16000) == 49
    assert p.frames_for(479) == 0 and p.frames_for(480) == 1 and p.frames_for(799) == 1
    assert p.frames_for(800) == 2


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"window_ms": 40.0}, "longer than fft_size=512"),
        ({"fft_size": 256}, "longer than fft_size=256"),
        ({"fmax_hz": 9000.0}, "above the Nyquist frequency 8000"),
        ({"fmin_hz": 5000.0, "fmax_hz": 4000.0}, "must be below fmax_hz"),
        ({"fft_size": 500}, "power of two"),
        ({"window_ms": 30.03}, "whole numbers of samples"),
        ({"hop_ms": 40.0}, "longer than window_ms"),
        ({"mel_bands": 300}, "exceeds the 256 FFT bins"),
        ({"log_floor": 0.0}, "log_floor"),
        ({"window": "hamming"}, "window"),
        ({"sample_rate_hz": 16000, "unknown": 1}, "unknown"),
    ],
)
def test_bad_parameters_are_refused_with_one_line(values, fragment):
    with pytest.raises(KwsError) as info:
        FeatureParams.create(**values)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("feature parameters:")


def test_frozen_and_digest_is_stable():
    p = FeatureParams()
    with pytest.raises(Exception):
        p.mel_bands = 20  # type: ignore[misc]
    assert p.digest() == FeatureParams().digest()
    assert p.digest() != FeatureParams(mel_bands=32).digest()
