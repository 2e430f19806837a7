"""Synthetic keyword clips in the Speech Commands layout, from the TTS engines on this machine.

Why: a keyword spotter can be trained end to end (data -> model -> firmware) without
downloading Speech Commands, and real data can be topped up with voices it lacks.

Layout written under `out` (the one `kws.data.dataset` reads):

* `<word>/<speaker>_nohash_<n>.wav` for every keyword,
* `_unknown_/<word>_<speaker>_nohash_<n>.wav`, `per_word` clips spread over non-keywords,
* `_background_noise_/{white,pink,brown}_noise.wav`, so `_silence_` clips can be cut.

Engines: espeak-ng (English `gmw/` voices x every variant, hundreds of voices, fast),
flite (a handful of voices, fast) and festival's `text2wave` (slow, so a small share).
Each clip gets its own numpy Generator seeded from (seed, label, index), so the files are
byte-identical for the same seed whatever order the worker threads finish in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np

from kws.config import KEYWORDS, NOISE_FOLDER, UNKNOWN_LABEL
from kws.data.augment import colored_noise
from kws.data.audio import SAMPLE_RATE_HZ, read_wav, resample, write_wav
from kws.errors import AudioError, KwsError

# Speech Commands' auxiliary (non-keyword) words; the default `_unknown_` vocabulary.
UNKNOWN_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "follow", "forward", "happy", "house", "learn",
    "marvin", "sheila", "tree", "visual", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)
# A wider `_unknown_` vocabulary (`kws synth --unknown-words wide`): everyday words, some close
# to a keyword without containing it (light/right, toe/go, top/stop, yet/yes, cup/up). Words a
# keyword starts (going, often, upper, yesterday, nobody) or sounds like (know, write) are left
# out: cut by the training shift they would be a keyword labelled _unknown_.
WIDE_UNKNOWN_WORDS = UNKNOWN_WORDS + (
    "apple", "baby", "basket", "beach", "bell", "bike", "black", "blue", "boat", "book",
    "bottle", "bread", "bridge", "brother", "butter", "cake", "camera", "candle", "car",
    "chair", "cheese", "chicken", "city", "clock", "cloud", "coffee", "color", "corn", "dance",
    "dark", "desk", "dinner", "doctor", "door", "dream", "dress", "drink", "earth", "egg",
    "engine", "face", "farm", "father", "feather", "field", "finger", "fire", "fish", "flag",
    "floor", "flower", "forest", "friend", "frog", "fruit", "garden", "glass", "grass", "green",
    "hand", "hat", "heart", "hill", "horse", "island", "jacket", "juice", "key", "king",
    "kitchen", "lamp", "lemon", "letter", "lion", "lunch", "map", "market", "milk", "money",
    "moon", "mother", "mountain", "music", "number", "ocean", "orange", "paper", "park",
    "pencil", "people", "piano", "picture", "pillow", "plant", "pocket", "potato", "purple",
    "queen", "rabbit", "rain", "red", "river", "road", "rock", "salt", "sand", "school", "sea",
    "shirt", "shoe", "silver", "sister", "sky", "snow", "soap", "song", "spoon", "square",
    "star", "stone", "storm", "street", "sugar", "summer", "sun", "table", "tea", "teacher",
    "ticket", "tiger", "time", "toast", "tomato", "tooth", "towel", "train", "truck", "water",
    "window", "winter", "wolf", "yellow", "zebra",
    # near a keyword
    "yet", "yell", "less", "mess", "nose", "toe", "show", "slow", "though", "dough", "cup",
    "pup", "town", "crown", "gown", "lift", "light", "bright", "white", "kite", "night",
    "fight", "bone", "cone", "cough", "soft", "shop", "drop", "top", "step", "stock", "load",
)
UNKNOWN_VOCABULARIES = {"speech-commands": UNKNOWN_WORDS, "wide": WIDE_UNKNOWN_WORDS}
CLIP_SAMPLES = SAMPLE_RATE_HZ  # every clip is exactly 1.000 s
# Longest spoken part; longer utterances are time-compressed, never cut.
MAX_WORD_SAMPLES = int(0.95 * SAMPLE_RATE_HZ)
TRIM_TOP_DB = 40.0  # what counts as leading/trailing silence, relative to the loudest frame
FADE_SAMPLES = 64  # 4 ms ramps at the trimmed edges, so the cut never clicks

# Per-clip variation ranges (see `_plan_clip`).
TEMPO_RANGE = (0.8, 1.25)  # speaking-rate factor given to the engine
SHIFT_RANGE = (0.85, 1.18)  # resampling factor: >1 = higher formants/pitch and shorter
PEAK_DBFS_RANGE = (-30.0, -1.0)
ESPEAK_WPM = 160  # words per minute at tempo 1
ESPEAK_AMPLITUDE_RANGE = (60, 160)  # espeak-ng -a (100 = default); the final level is set later

# Share of clips per engine (renormalised over the installed ones): espeak-ng has by far the
# most voices; festival costs ~0.2 s a call, so it stays a minority.
ENGINE_WEIGHTS = {"espeak-ng": 0.7, "flite": 0.2, "festival": 0.1}
ENGINE_BINARIES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
APT_HINT = "sudo apt-get install espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts"
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
TTS_TIMEOUT_S = 60.0

# Mean F0 (Hz) of flite's voices as they ship (measured); the pitch draw scales it.
# A voice not listed keeps its own pitch.
FLITE_F0_HZ = {"kal": 100.0, "kal16": 100.0, "awb": 130.0, "rms": 105.0, "slt": 170.0}
# Voices that are the same recorded person in another engine get one speaker id, so a
# speaker-hash split cannot put "slt" in training and "slt" again in testing.
SAME_PERSON = {
    ("flite", "kal"): "kal", ("flite", "kal16"): "kal", ("festival", "kal_diphone"): "kal",
    ("flite", "slt"): "slt", ("festival", "cmu_us_slt_arctic_hts"): "slt",
    ("flite", "awb"): "awb", ("flite", "rms"): "rms",
}

NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # exponent of the 1/f^a power
NOISE_SECONDS = 10.0
NOISE_PEAK = 0.5  # -6 dBFS

_WORD_RE = re.compile(r"[a-z0-9](?:[a-z0-9' -]*[a-z0-9'])?")


@dataclass(frozen=True)
class SynthReport:
    """What `synthesize` wrote: clip counts per label and per engine, wall time."""

    out: Path
    clips: int
    per_label: dict[str, int]
    engines: dict[str, int]
    seconds: float
    reused: bool = False  # the folder already held exactly these clips


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine, its voice name and (espeak-ng only) a variant."""

    engine: str
    name: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.name}+{self.variant}" if self.variant else self.name

    @property
    def speaker(self) -> str:
        """8 lowercase hex digits, stable across runs and machines (no `_`, as the
        `<speaker>_nohash_` file names need)."""
        person = SAME_PERSON.get((self.engine, self.name))
        key = f"person:{person}" if person else f"{self.engine}:{self}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ClipPlan:
    """Everything random about one clip, drawn before any audio is made."""

    label: str
    index: int
    word: str
    voice: Voice
    tempo: float  # speaking-rate factor, 1 = the engine's default
    pitch: float  # -1..1, mapped to each engine's pitch control
    amplitude: int  # espeak-ng -a
    shift: float  # resampling factor for a formant + pitch shift
    place: float  # 0..1: where the word sits inside the 1 s clip
    peak_dbfs: float


# --------------------------------------------------------------------------- public API


def synthesize(
    out: Path,
    words: Sequence[str] = KEYWORDS,
    per_word: int = 100,
    seed: int = 0,
    unknown_words: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    unknown_clips: int | None = None,
) -> SynthReport:
    """Write `per_word` clips per word, `unknown_clips` (default `per_word`) `_unknown_` clips
    cycling through `unknown_words` (default: Speech Commands' auxiliary words), and three
    noise files. `per_word` may be 0 for a folder of `_unknown_` clips only.

    Files are written into `out` (created if needed); only our own file names are
    overwritten, other files are left alone. `progress(done, total)` is called from this
    thread after every clip. Raises KwsError for bad arguments, no TTS engine, or a TTS call
    that fails (no clip is silently dropped).
    """
    started = time.perf_counter()
    out = Path(out)
    words = _check_words(words, "words")
    unknown = _unknown_vocabulary(words, unknown_words)
    if isinstance(per_word, bool) or not isinstance(per_word, int) or per_word < 0:
        raise KwsError(f"per_word must be a non-negative integer, got {per_word!r}")
    unknown_clips = per_word if unknown_clips is None else unknown_clips
    if isinstance(unknown_clips, bool) or not isinstance(unknown_clips, int) or unknown_clips < 0:
        raise KwsError(f"unknown_clips must be a non-negative integer, got {unknown_clips!r}")
    if per_word + unknown_clips == 0:
        raise KwsError("per_word and unknown_clips are both 0: nothing to synthesize")
    workers = 2 * (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise KwsError(f"workers must be at least 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise KwsError(f"{out}: exists and is not a folder")
    voices = available_voices()

    plans = _plan_all(words, unknown, per_word, seed, voices, unknown_clips)
    paths = _file_paths(out, plans)
    digest = hashlib.sha256(repr(plans).encode()).hexdigest()
    if _up_to_date(out, paths, digest):
        return _report(out, plans, started, reused=True)
    for folder in {p.parent for p in paths}:
        folder.mkdir(parents=True, exist_ok=True)
    _remove_stale(out, paths)
    _write_noise(out / NOISE_FOLDER, seed)
    _warm_up_librosa()
    _run_all(plans, paths, workers, progress)
    _record(out, paths, digest)
    return _report(out, plans, started)


def _report(out: Path, plans: list, started: float, reused: bool = False) -> SynthReport:
    return SynthReport(
        out=out,
        clips=len(plans),
        per_label=dict(Counter(p.label for p in plans)),
        engines=dict(sorted(Counter(p.voice.engine for p in plans).items())),
        seconds=time.perf_counter() - started,
        reused=reused,
    )


def available_voices() -> dict[str, tuple[Voice, ...]]:
    """Installed engines -> their voices, sorted (engines without voices are left out).

    Raises KwsError with the apt-get line to run when there is none at all.
    """
    finders = {"espeak-ng": _espeak_voices, "flite": _flite_voices, "festival": _festival_voices}
    found = {}
    for engine, finder in finders.items():
        if shutil.which(ENGINE_BINARIES[engine]):
            voices = finder()
            if voices:
                found[engine] = voices
    if not found:
        raise KwsError(f"no text-to-speech engine with an English voice found; run: {APT_HINT}")
    return found


# --------------------------------------------------------------------------- voices


@lru_cache(maxsize=1)
def _espeak_voices() -> tuple[Voice, ...]:
    """English `gmw/` voices x (no variant + every variant). mbrola `mb/` voices are listed
    by espeak-ng even when the mbrola data is missing, so they are skipped."""
    listing = _listing(["espeak-ng", "--voices=en"])
    names = sorted(
        {parts[4] for parts in (line.split() for line in listing)
         if len(parts) >= 5 and parts[4].startswith("gmw/")}
    )
    variants = set()
    for line in _listing(["espeak-ng", "--voices=variant"]):
        # The file column may hold a space ("!v/Mr serious"); "(...)" languages may follow.
        match = re.search(r"!v/(.+?)\s*(?:\(|$)", line.rstrip())
        if match:
            variants.add(match.group(1))
    return tuple(
        Voice("espeak-ng", name, variant) for name in names for variant in ["", *sorted(variants)]
    )


@lru_cache(maxsize=1)
def _flite_voices() -> tuple[Voice, ...]:
    """`flite -lv` voices, except limited-domain `*_time` ones that can only tell the time."""
    text = " ".join(_listing(["flite", "-lv"]))
    names = text.split(":", 1)[-1].split()
    return tuple(Voice("flite", n) for n in sorted(set(names)) if not n.endswith("_time"))


@lru_cache(maxsize=1)
def _festival_voices() -> tuple[Voice, ...]:
    """Installed festival voices are the folders `<voices>/<language>/<voice>`."""
    names = sorted({p.name for p in FESTIVAL_VOICE_DIR.glob("*/*") if p.is_dir()})
    return tuple(Voice("festival", n) for n in names)


def _listing(cmd: list[str]) -> list[str]:
    """Lines a voice-listing command prints; a broken engine counts as having no voices."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=TTS_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


# --------------------------------------------------------------------------- planning


def _check_words(words: Sequence[str], what: str) -> tuple[str, ...]:
    """Words become folder/file names and TTS input: lowercase letters, digits, `'`, `-` and
    inner spaces only (no `_`, which would break `<word>_<speaker>_nohash_` parsing)."""
    if isinstance(words, str):
        raise KwsError(f"{what} must be a list of words, not the string {words!r}")
    words = tuple(words)
    for word in words:
        if not isinstance(word, str) or not _WORD_RE.fullmatch(word):
            raise KwsError(f"{what}: {word!r} is not a lowercase word (a-z, 0-9, ', - only)")
    if len(set(words)) != len(words):
        raise KwsError(f"{what} must be unique, got {', '.join(words)}")
    return words


def _unknown_vocabulary(words: tuple[str, ...], unknown: Sequence[str] | None) -> tuple[str, ...]:
    """The non-keyword words, minus any that are keywords here (they would be mislabelled)."""
    if not words:
        raise KwsError("words: give at least one keyword")
    chosen = _check_words(UNKNOWN_WORDS if unknown is None else unknown, "unknown_words")
    left = tuple(w for w in chosen if w not in words)
    if not left:
        raise KwsError("unknown_words: no word is left once the keywords are removed")
    return left


def _plan_all(
    words: tuple[str, ...], unknown: tuple[str, ...], per_word: int, seed: int,
    voices: dict[str, tuple[Voice, ...]], unknown_clips: int | None = None,
) -> list[ClipPlan]:
    """Keyword clips, then `_unknown_` clips cycling through the unknown words."""
    plans = [
        _plan_clip(word, i, word, seed, voices) for word in words for i in range(per_word)
    ]
    plans += [
        _plan_clip(UNKNOWN_LABEL, i, unknown[i % len(unknown)], seed, voices)
        for i in range(per_word if unknown_clips is None else unknown_clips)
    ]
    return plans


def _plan_clip(
    label: str, index: int, word: str, seed: int, voices: dict[str, tuple[Voice, ...]]
) -> ClipPlan:
    """Draw one clip's voice and variation from its own Generator (fixed draw order)."""
    rng = np.random.default_rng(_clip_seed(seed, label, index))
    engines = sorted(voices)
    weights = np.array([ENGINE_WEIGHTS.get(e, 0.1) for e in engines])
    engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    voice = voices[engine][int(rng.integers(len(voices[engine])))]
    return ClipPlan(
        label=label,
        index=index,
        word=word,
        voice=voice,
        tempo=float(rng.uniform(*TEMPO_RANGE)),
        pitch=float(rng.uniform(-1.0, 1.0)),
        amplitude=int(rng.integers(ESPEAK_AMPLITUDE_RANGE[0], ESPEAK_AMPLITUDE_RANGE[1] + 1)),
        shift=float(rng.uniform(*SHIFT_RANGE)),
        place=float(rng.uniform()),
        peak_dbfs=float(rng.uniform(*PEAK_DBFS_RANGE)),
    )


def _clip_seed(seed: int, label: str, index: int) -> int:
    """A 128-bit seed from (seed, label, index); Python's hash() is salted per process."""
    digest = hashlib.sha256(f"{seed}\0{label}\0{index}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def _file_paths(out: Path, plans: list[ClipPlan]) -> list[Path]:
    """Speech Commands names; `<n>` counts a speaker's repeats of the same word in order."""
    seen: Counter[tuple[str, str, str]] = Counter()
    paths = []
    for plan in plans:
        key = (plan.label, plan.word, plan.voice.speaker)
        n = seen[key]
        seen[key] += 1
        stem = f"{plan.voice.speaker}_nohash_{n}.wav"
        if plan.label == UNKNOWN_LABEL:
            stem = f"{plan.word}_{stem}"
        paths.append(out / plan.label / stem)
    return paths


# --------------------------------------------------------------------------- running


def _run_all(
    plans: list[ClipPlan], paths: list[Path], workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Make every clip on a thread pool (the TTS subprocesses run in parallel) and raise the
    first failure; clips not started yet are then dropped instead of being waited for."""
    with tempfile.TemporaryDirectory(prefix="kws-synth-") as tmp:
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [
                pool.submit(_make_clip, plan, path, Path(tmp))
                for plan, path in zip(plans, paths, strict=True)
            ]
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()  # re-raises the clip's KwsError
                if progress is not None:
                    progress(done, len(plans))
        finally:
            # Running clips finish first, so the temp folder is not removed under them.
            pool.shutdown(wait=True, cancel_futures=True)


def _make_clip(plan: ClipPlan, path: Path, tmp: Path) -> None:
    """TTS -> 16 kHz float -> shaped 1 s clip -> 16-bit WAV at `path`."""
    speech = _speak(plan, tmp / f"{plan.label}-{plan.index}.wav")
    clip = _shape(speech, plan)
    write_wav(path, clip)


def _speak(plan: ClipPlan, wav: Path) -> np.ndarray:
    """Run the plan's engine into `wav` and read it back at 16 kHz mono float."""
    voice = plan.voice
    cmd, stdin = _COMMANDS[voice.engine](plan, wav)
    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=TTS_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _tts_error(plan, str(exc) or type(exc).__name__) from None
    # text2wave exits 0 after a Scheme error, so a missing file is the real failure signal.
    if done.returncode != 0 or not wav.is_file() or wav.stat().st_size == 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}, no audio"])
        raise _tts_error(plan, why[-1])
    try:
        return read_wav(wav)
    except AudioError as exc:
        raise _tts_error(plan, exc.reason) from None
    finally:
        wav.unlink(missing_ok=True)


def _tts_error(plan: ClipPlan, why: str) -> KwsError:
    return KwsError(
        f"{plan.voice.engine} voice {plan.voice} failed on word {plan.word!r}: {why.strip()}"
    )


def _espeak_command(plan: ClipPlan, wav: Path) -> tuple[list[str], str]:
    """Rate around 160 wpm (espeak-ng's default 175 makes a lone "go" ~0.2 s, shorter than
    people say isolated words), pitch 15..85 of its 0..99 scale. The word goes in on stdin,
    so nothing in it can be taken for an option."""
    cmd = [
        "espeak-ng", "-v", str(plan.voice),
        "-s", str(round(ESPEAK_WPM * plan.tempo)),
        "-p", str(round(50 + 35 * plan.pitch)),
        "-a", str(plan.amplitude),
        "-w", str(wav),
    ]
    return cmd, plan.word


def _flite_command(plan: ClipPlan, wav: Path) -> tuple[list[str], str | None]:
    """Duration stretch for the rate; mean F0 scaled by up to ~4 semitones either way."""
    cmd = ["flite", "-voice", plan.voice.name,
           "--setf", f"duration_stretch={1 / plan.tempo:.4f}"]
    base_f0 = FLITE_F0_HZ.get(plan.voice.name)
    if base_f0 is not None:
        cmd += ["--setf", f"int_f0_target_mean={base_f0 * 2 ** (0.35 * plan.pitch):.2f}"]
    return [*cmd, "-t", plan.word, "-o", str(wav)], None


def _festival_command(plan: ClipPlan, wav: Path) -> tuple[list[str], str]:
    """Diphone/unit voices take Duration_Stretch and the linear-regression F0 target;
    HTS voices ignore both, so they get the engine's own speed option `-r` instead."""
    stretch = 1 / plan.tempo
    f0_scale = 2 ** (0.35 * plan.pitch)
    scheme = [
        f"(voice_{plan.voice.name})",
        f"(Parameter.set 'Duration_Stretch {stretch:.4f})",
        (
            "(if (and (boundp 'int_lr_params) (assoc 'target_f0_mean int_lr_params))"
            " (set! int_lr_params (cons (list 'target_f0_mean"
            f" (* {f0_scale:.4f} (cadr (assoc 'target_f0_mean int_lr_params)))) int_lr_params)))"
        ),
        (
            "(if (equal? (Parameter.get 'Synth_Method) 'HTS) (set! hts_engine_params"
            f' (append hts_engine_params (list (list "-r" {plan.tempo:.4f})))))'
        ),
    ]
    cmd = ["text2wave"]
    for expr in scheme:
        cmd += ["-eval", expr]
    return [*cmd, "-o", str(wav)], plan.word


_COMMANDS = {"espeak-ng": _espeak_command, "flite": _flite_command, "festival": _festival_command}


# --------------------------------------------------------------------------- audio shaping


def _shape(speech: np.ndarray, plan: ClipPlan) -> np.ndarray:
    """Formant/pitch shift, trim, fit within 0.95 s, place in 1 s, set the peak level."""
    shifted = resample(speech, round(SAMPLE_RATE_HZ * plan.shift), SAMPLE_RATE_HZ)
    word, _ = librosa.effects.trim(shifted, top_db=TRIM_TOP_DB)
    if not np.any(word):
        raise _tts_error(plan, "the engine produced only silence")
    word = _fade_edges(_fit_word(word))
    peak = float(np.max(np.abs(word)))  # after the time stretch, which can raise peaks
    clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    start = min(int(plan.place * (CLIP_SAMPLES - len(word) + 1)), CLIP_SAMPLES - len(word))
    clip[start : start + len(word)] = word * (10 ** (plan.peak_dbfs / 20) / peak)
    return clip


def _fit_word(word: np.ndarray, limit: int = MAX_WORD_SAMPLES) -> np.ndarray:
    """Speed a too-long utterance up (pitch kept) so it fits `limit` samples whole."""
    if len(word) <= limit:
        return word
    faster = librosa.effects.time_stretch(word, rate=len(word) / limit)
    return faster[:limit]


def _fade_edges(word: np.ndarray) -> np.ndarray:
    """Raised-cosine fade in/out: trimming cuts at frame edges, up to -40 dB below the peak."""
    n = min(FADE_SAMPLES, len(word) // 2)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    word = word.astype(np.float32, copy=True)
    word[:n] *= ramp
    word[len(word) - n :] *= ramp[::-1]
    return word


def _warm_up_librosa() -> None:
    """librosa loads its submodules lazily; do it once here rather than racing in threads."""
    noise = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    librosa.effects.trim(noise, top_db=TRIM_TOP_DB)
    _fit_word(noise, limit=2048)


# --------------------------------------------------------------------------- bookkeeping

RECORD_NAME = ".kws-synth.json"


def _remove_stale(out: Path, paths: list[Path]) -> None:
    """A rerun with other settings replaces the previous run's clips instead of piling new ones
    beside them. Only files the previous run recorded are removed; user files stay."""
    record = out / RECORD_NAME
    if not record.is_file():
        return
    try:
        previous = json.loads(record.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return
    keep = {p.relative_to(out).as_posix() for p in paths}
    for rel in previous:
        target = out / rel
        if rel not in keep and ".." not in Path(rel).parts and target.is_file():
            target.unlink()


def _record(out: Path, paths: list[Path], digest: str) -> None:
    files = sorted(p.relative_to(out).as_posix() for p in paths)
    (out / RECORD_NAME).write_text(json.dumps({"plan_sha256": digest, "files": files}, indent=0)
                                   + "\n")


def _up_to_date(out: Path, paths: list[Path], digest: str) -> bool:
    """The folder already holds exactly this plan's clips (same words, counts, seed, voices):
    synthesis is deterministic, so they need not be made again."""
    try:
        record = json.loads((out / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("plan_sha256") == digest
            and all(p.is_file() and p.stat().st_size > 44 for p in paths))


# --------------------------------------------------------------------------- noise


def _write_noise(folder: Path, seed: int) -> None:
    """White, pink and brown noise, 10 s at 16 kHz: enough to cut `_silence_` clips from."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(NOISE_SECONDS * SAMPLE_RATE_HZ)
    for i, (color, exponent) in enumerate(NOISE_COLORS.items()):
        rng = np.random.default_rng(_clip_seed(seed, NOISE_FOLDER, i))
        noise = colored_noise(n, exponent, rng).astype(np.float64)
        write_wav(folder / f"{color}_noise.wav", noise * (NOISE_PEAK / np.max(np.abs(noise))))


__all__ = ["UNKNOWN_WORDS", "SynthReport", "Voice", "available_voices", "synthesize"]
