import numpy as np
import pytest
import soundfile as sf

from kws.model.config import load_train_config

WORDS = ("yes", "no")


def tone_folder(root, speakers=10, per_speaker=2):
    """A tiny, learnable data set: each word is a tone sweep in its own band, per speaker a
    slightly different pitch, placed at random in the clip, over light noise."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for w, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for s in range(speakers):
            for k in range(per_speaker):
                f0 = (400 if w == 0 else 2200) * (1 + 0.03 * s)
                burst = 0.4 * np.sin(2 * np.pi * (f0 + 600 * t) * t) * np.hanning(len(t))
                x = 0.003 * rng.standard_normal(16000)
                start = rng.integers(0, 8000)
                x[start:start + 8000] += burst
                sf.write(root / word / f"{s:04x}{w:04x}_nohash_{k}.wav", x, 16000, subtype="PCM_16")
    (root / "_unknown_").mkdir()
    for s in range(speakers):
        x = 0.2 * rng.standard_normal(16000) * np.hanning(16000)
        sf.write(root / "_unknown_" / f"hiss_{s:04x}ffff_nohash_0.wav", x, 16000, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "hum.wav", 0.05 * rng.standard_normal(16000 * 30), 16000,
             subtype="PCM_16")
    return root


TINY = {
    "epochs": 3, "batch_size": 16, "calibration_clips": 16, "model.units": 16, "model.layers": 1,
    "data.keywords": list(WORDS), "data.validation_percent": 20, "data.testing_percent": 20,
    "data.split_salt": "t", "learning_rate": 0.01, "patience": 10,
    "streaming.enabled": False,  # the clip model; tests/model/test_stream_train.py streams
}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return tone_folder(tmp_path_factory.mktemp("tones") / "data")


@pytest.fixture(scope="session")
def tiny_settings():
    """TINY without model.units: the fixed settings of a tiny sweep."""
    return {k: v for k, v in TINY.items() if k != "model.units"}


@pytest.fixture(scope="session")
def tiny_config():
    return load_train_config(None, dict(TINY))


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """One tiny model trained and exported through the same code path as `kws train`."""
    from rich.console import Console

    from kws.commands.train import train_run

    out = tmp_path_factory.mktemp("runs") / "tiny"
    sets = [f"{k}={v}" for k, v in TINY.items() if k not in ("epochs", "model.units")]
    sets = [s.replace("'", "").replace('"', "") for s in sets]
    summary = train_run(out, [tiny_data], None, TINY["epochs"], TINY["model.units"], sets,
                        resume=False, force=False, err=Console(stderr=True, quiet=True))
    return out, summary
