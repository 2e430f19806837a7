"""Log-mel features: one parameter set, a librosa reference, generated C, proven equal."""

from kws.features.params import FeatureParams

__all__ = ["FeatureParams"]
