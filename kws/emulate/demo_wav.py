"""A short test recording for emulated boards: keyword clips of held-out speakers, one after
another with quiet gaps, so `make flash BOARD=qemu_m4` has something to hear by default.

Clips come from the test split of the data (speakers the default model never trained on);
without real data, from `kws synth` (a synthetic voice, as the demo says).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kws.errors import KwsError

DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
GAP_S = 0.5
NOISE_LEVEL = 0.002  # about -54 dBFS of white noise between words, as a quiet room


def pick_clips(roots: Sequence[Path], words: Sequence[str]) -> list[tuple[str, Path]]:
    """The first clip (by path) of each word in the test split, else any split."""
    from kws.config import DataConfig
    from kws.data.dataset import index_folders

    ds = index_folders(roots, DataConfig())
    chosen = []
    for word in words:
        clips = sorted((c for c in ds.clips if c.label == word and c.path is not None),
                       key=lambda c: (c.split != "test", str(c.path)))
        if clips:
            chosen.append((word, clips[0].path))
    if not chosen:
        raise KwsError(f"no clip of {', '.join(words)} in {', '.join(map(str, roots))}")
    return chosen


def build(out: Path, roots: Sequence[Path], words: Sequence[str] = DEFAULT_WORDS,
          seed: int = 0) -> list[dict]:
    """Write the recording; returns [{word, file, start_s}] (where each clip begins)."""
    from kws.data.audio import SAMPLE_RATE_HZ, read_wav, write_wav

    rng = np.random.default_rng(seed)
    gap = int(GAP_S * SAMPLE_RATE_HZ)
    pieces, index, t = [], [], 0
    for word, path in pick_clips(roots, words):
        audio = read_wav(path)
        pieces.append(rng.normal(0, NOISE_LEVEL, gap).astype(np.float32))
        t += gap
        index.append({"word": word, "file": str(path), "start_s": round(t / SAMPLE_RATE_HZ, 3)})
        pieces.append(audio)
        t += len(audio)
    pieces.append(rng.normal(0, NOISE_LEVEL, gap).astype(np.float32))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.wav")
    write_wav(tmp, np.concatenate(pieces))
    tmp.replace(out)
    return index


def default_roots(given: Sequence[Path], synth_dir: Path) -> list[Path]:
    """The data given, else the shared data, else synthetic clips made on the spot."""
    from kws.data.dataset import default_data_roots

    roots, _ = default_data_roots(given)
    if roots:
        return roots
    from kws.data.synth import synthesize

    synthesize(synth_dir, words=list(DEFAULT_WORDS), per_word=2, seed=0)
    return [synth_dir]
