"""End to end (emulation level L4): the generated firmware of an emulated board, built by
PlatformIO through the local kws-qemu platform and run in QEMU on WAV files, hears what the
host mirror (L3) hears, and its per-clip int8 logits equal the native backend's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kws.data.audio import write_wav
from kws.data.dataset import shared_speech_commands
from kws.emulate import firmware
from kws.evaluation import backends
from kws.export.read import load_bundle
from kws.recognize.stream import StreamRunner
from tests.bundle_factory import write_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("bundle") / "run")


def two_clips() -> np.ndarray:
    """Two 1 s int16 clips: real speech from the shared data when present, else tone bursts."""
    root = shared_speech_commands()
    if root is not None:
        from kws.data.audio import fit_to_length, read_wav, to_int16

        paths = [sorted((root / w).glob("*.wav"))[0] for w in ("yes", "stop")]
        return np.stack([to_int16(fit_to_length(read_wav(p), 16000)) for p in paths])
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    return np.stack([(8000 * np.sin(2 * np.pi * f * t) * np.hanning(16000)
                      + rng.normal(0, 200, 16000)).astype(np.int16) for f in (440, 1800)])


def stream_audio() -> np.ndarray:
    """The two clips with quiet gaps: a 3.5 s stream."""
    rng = np.random.default_rng(4)
    gap = lambda n: rng.normal(0, 60, n).astype(np.int16)  # noqa: E731
    a, b = two_clips()
    return np.concatenate([gap(8000), a, gap(8000), b, gap(8000)])


def pio_upload(project_dir: Path, env: str, wav: Path) -> str:
    from kws.pio.run import pio_env, run

    proc = run(project_dir, ["run", "-e", env, "-t", "upload"], timeout=300,
               env={**pio_env(), "KWS_WAV": str(wav)})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    return proc.stdout


def test_make_flash_path_pio_build_and_qemu_upload_hear_what_the_mirror_hears(bundle, tmp_path):
    from kws.codegen.project import generate

    generate(bundle, "qemu_m4", tmp_path / "proj")
    wav = tmp_path / "two_clips.wav"
    audio = stream_audio()
    write_wav(wav, audio)
    out = pio_upload(tmp_path / "proj", "qemu_m4", wav)
    (run,) = firmware.parse(out)
    b = load_bundle(bundle)
    mirror = StreamRunner(b.manifest, b.tflite).run(audio)
    # the firmware prints score and time rounded half up to hundredths
    expected = [{"label": b.manifest.labels[i], "score": ((s * 100 + 16384) >> 15) / 100,
                 "t_s": ((t + 5) // 10) / 100} for i, s, t in mirror.detections]
    assert expected, "the eager test recognizer should fire on this stream"
    assert run.detections == expected
    assert run.counters["frames"] == mirror.frames
    assert run.counters["decisions"] == len(mirror.decisions)
    assert run.counters["overruns"] == 0 and run.counters["samples"] == len(audio)
    assert run.counters["instructions"] > 0


@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m7", "qemu_m55"])
def test_decisions_and_clip_logits_equal_the_native_backend(bundle, tmp_path, board):
    b = load_bundle(bundle)
    fw = firmware.build(bundle, board)
    clips = two_clips()
    native = backends.get("native", b).run_clips(clips)
    assert np.array_equal(firmware.clip_logits(fw, clips), native)
    wav = tmp_path / "s.wav"
    audio = stream_audio()
    write_wav(wav, audio)
    (run,) = firmware.run(fw, [wav], decisions=True)
    mirror = StreamRunner(b.manifest, b.tflite).run(audio)
    assert [t for t, _ in run.decisions] == [t for t, _ in mirror.decisions]
    for (_, got), (_, want) in zip(run.decisions, mirror.decisions):
        assert np.array_equal(got, want)


def test_bad_wav_is_a_one_line_error(bundle, tmp_path):
    from kws.errors import KwsError

    fw = firmware.build(bundle, "qemu_m4")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(KwsError, match="bad.wav"):
        firmware.run(fw, [bad])


def test_real_board_is_not_emulated(bundle):
    from kws.errors import KwsError

    with pytest.raises(KwsError, match="nano33 is a real board"):
        firmware.build(bundle, "nano33")


@pytest.mark.parametrize("decision_frames", [1, 3])
def test_continuous_firmware_decides_every_n_frames_like_the_mirror(tmp_path, decision_frames):
    """A streaming-trained bundle (one state never reset): every decision of the firmware in
    QEMU equals the Python mirror's (and so the host C core's, tests/recognize), and its clip
    logits (`kws eval --backend qemu`: the last frame's, whatever the decision period) equal
    the native backend's."""
    from kws.export.manifest import read_manifest, write_manifest

    folder = write_bundle(tmp_path / "run")
    m = read_manifest(folder / "manifest.json")
    m = m.model_copy(update={"streaming": m.streaming.model_copy(
        update={"mode": "continuous", "decision_frames": decision_frames})})
    write_manifest(m, folder / "manifest.json")
    b = load_bundle(folder)
    fw = firmware.build(folder, "qemu_m4")
    wav = tmp_path / "s.wav"
    audio = stream_audio()
    write_wav(wav, audio)
    (run,) = firmware.run(fw, [wav], decisions=True)
    mirror = StreamRunner(b.manifest, b.tflite).run(audio)
    assert len(mirror.decisions) == mirror.frames // decision_frames
    assert [t for t, _ in run.decisions] == [t for t, _ in mirror.decisions]
    assert all(np.array_equal(got, want)
               for (_, got), (_, want) in zip(run.decisions, mirror.decisions))
    assert run.counters["decisions"] == len(mirror.decisions)
    assert [(d["label"]) for d in run.detections] == \
        [b.manifest.labels[i] for i, _, _ in mirror.detections]
    clips = two_clips()
    native = backends.get("native", b).run_clips(clips)
    assert np.array_equal(firmware.clip_logits(fw, clips), native)


def test_every_backend_runs_the_same_stream_through_the_registry(tmp_path):
    """The streaming mode through kws.evaluation.backends: native (one C call), tflm (the
    interpreter frame by frame) and qemu (the firmware) give the same decisions on a continuous
    bundle, and the same detections; keras refuses a stream in one line."""
    from kws.errors import KwsError
    from kws.export.manifest import read_manifest, write_manifest

    folder = write_bundle(tmp_path / "run")
    m = read_manifest(folder / "manifest.json")
    m = m.model_copy(update={"streaming": m.streaming.model_copy(
        update={"mode": "continuous", "decision_frames": 1})})
    write_manifest(m, folder / "manifest.json")
    b = load_bundle(folder)
    audio = stream_audio()
    runs = {name: backends.get(name, b).run_stream(audio) for name in ("native", "tflm", "qemu")}
    want = runs["native"]
    assert len(want.decisions) == want.frames > 0
    for name, got in runs.items():
        assert [t for t, _ in got.decisions] == [t for t, _ in want.decisions], name
        assert all(np.array_equal(g, w) for (_, g), (_, w) in zip(got.decisions, want.decisions))
        assert [(i, t) for i, _, t in got.detections] == \
            [(i, t) for i, _, t in want.detections], name
    with pytest.raises(KwsError, match="keras: runs 1 s clips only"):
        backends.get("keras", b).run_stream(audio)
    with pytest.raises(KwsError, match="not one of keras, tflite, tflm, native, qemu"):
        backends.get("onnx", b)
