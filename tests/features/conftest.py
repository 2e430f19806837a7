import numpy as np
import pytest

from kws.features.native import CFeatures
from kws.features.params import FeatureParams

SR = 16000


@pytest.fixture(scope="session")
def cfeat() -> CFeatures:
    """The generated C front end compiled for the host (cached by content across runs)."""
    return CFeatures(FeatureParams())


def tone(freq_hz: float, amplitude: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)
