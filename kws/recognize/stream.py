"""The whole C core (kws_app.c) mirrored in Python: int16 audio -> log-mel frames -> int8 step
model with K staggered states -> recognizer -> detections.

The device runs K hidden states; state k starts at frame k * clip_frames // K, steps once per
frame, and after clip_frames steps its logits are a decision and it is reset to zero. So every
decision is exactly "the clip of the last clip_frames frames, from the zero state" -- what the
model was trained on. This mirror uses that equivalence: it computes all frames first with the
host build of the C front end (CFeatures), then every decision as one clip in a single
NativeModel.run_clips call, instead of stepping K states frame by frame. Both are the device's
own C code, so the results equal the firmware's bit for bit (tests/recognize/test_app.py checks
it against the streaming C core on the host, HostApp).

Continuous mode (a streaming-trained model, manifest `streaming.mode = "continuous"`): one state,
never reset, steps every frame; a decision every N = `streaming.decision_frames` frames, at
frames where (index + 1) % N == 0. The Schedule is then K = 1, clip_frames = N, reset = False
(the C core's KWS_APP_STATES 1, KWS_APP_CLIP_FRAMES N, KWS_APP_RESET_STATES 0), and the mirror
runs the whole stream as one sequence (NativeModel.run_sequence, one C call).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kws.errors import KwsError
from kws.recognize.recognizer import Recognizer, RecognizerConfig
from kws.recognize.schedule import Schedule


@dataclass
class StreamResult:
    labels: tuple[str, ...]
    detections: list[tuple[int, int, int]] = field(default_factory=list)
    """(label index, score_q15, t_ms) per detection."""
    decisions: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(t_ms, int8 logits [L]) per decision, what the C core's decision hook sees."""
    frames: int = 0
    samples: int = 0
    """Audio samples consumed (whole hops; a trailing partial hop waits in the ring)."""

    def named(self) -> list[tuple[str, float, float]]:
        """(label, score 0..1, seconds) per detection, for people."""
        return [(self.labels[i], s / 32768, t / 1000) for i, s, t in self.detections]


def check_model_matches(manifest, model) -> None:
    """The manifest and the step model must describe the same tensors (the C core takes the
    input quantization from kws_model.h and the recognizer's from the manifest)."""
    io = model.io
    problems = []
    if model.labels != len(manifest.labels):
        problems.append(f"{model.labels} logits vs {len(manifest.labels)} labels")
    if model.frame_size != manifest.features.mel_bands:
        problems.append(f"frame size {model.frame_size} vs {manifest.features.mel_bands} mel bands")
    if model.state_size != manifest.state.size:
        problems.append(f"state size {model.state_size} vs {manifest.state.size}")
    for role, q in (("frame", manifest.input_quant), ("logits", manifest.logits_quant)):
        if (np.float32(io[role].scale) != np.float32(q.scale)
                or io[role].zero_point != q.zero_point):
            problems.append(f"{role} quantization {io[role].scale}/{io[role].zero_point} vs "
                            f"{q.scale}/{q.zero_point}")
    if problems:
        raise KwsError("the model does not match its manifest: " + "; ".join(problems))


class StreamRunner:
    """Runs a stream from a fresh device state (`run` starts over every call)."""

    def __init__(self, manifest, tflite_bytes: bytes, features=None, model=None):
        from kws.features.native import CFeatures
        from kws.native.host import NativeModel

        self.manifest = manifest
        self.schedule = Schedule.from_manifest(manifest)
        self.recognizer_config = RecognizerConfig.from_manifest(manifest)
        self.features = features or CFeatures(manifest.features)
        self.model = model or NativeModel(tflite_bytes)
        check_model_matches(manifest, self.model)

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """int8 model inputs [T, F] of the whole hops of `audio`, as the device quantizes them."""
        x = np.asarray(audio)
        if x.dtype != np.int16 or x.ndim != 1:
            raise KwsError(f"audio must be a 1-D int16 array, got {x.dtype} {x.shape}")
        hop = self.schedule.hop_samples
        log_mel = self.features.log_mel(x[: len(x) // hop * hop])
        q = self.model.io["frame"]
        return self.features.quantize(log_mel, q.scale, q.zero_point)

    def decision_logits(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(last frame index [D], int8 logits [D, C]) of every decision on int8 frames [T, F],
        in device order."""
        sched = self.schedule
        plan = sched.decisions(len(frames))
        ends = np.array([end for end, _ in plan], np.int64)
        if not plan:
            return ends, np.zeros((0, len(self.manifest.labels)), np.int8)
        if not sched.reset:  # one state, never reset: the whole stream is one sequence
            logits, _ = self.model.run_sequence(frames)
            return ends, logits[ends]
        clip = sched.clip_frames
        windows = np.lib.stride_tricks.sliding_window_view(frames, clip, axis=0)  # [W, F, clip]
        clips = np.ascontiguousarray(windows[ends - clip + 1].transpose(0, 2, 1))
        return ends, self.model.run_clips(clips)

    def run(self, audio: np.ndarray) -> StreamResult:
        frames = self.frames(audio)
        sched = self.schedule
        result = StreamResult(self.manifest.labels, frames=len(frames),
                              samples=len(audio) // sched.hop_samples * sched.hop_samples)
        ends, logits = self.decision_logits(frames)
        if not len(ends):
            return result
        recognizer = Recognizer(self.recognizer_config)
        for end, row in zip(ends, logits):
            t_ms = sched.time_ms(int(end))
            result.decisions.append((t_ms, row.copy()))
            fired = recognizer.push(row, t_ms)
            if fired is not None:
                result.detections.append((fired[0], fired[1], t_ms))
        return result
