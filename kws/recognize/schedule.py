"""When the device decides: K staggered states reset after each clip (clip mode) or one state
never reset, deciding every N frames (continuous mode), and the time a frame ends at, in
uint32 milliseconds as the C core counts them. See kws.recognize.stream for the whole core."""

from __future__ import annotations

from dataclasses import dataclass

from kws.errors import KwsError

UINT32_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class Schedule:
    """When the K staggered states decide, and what time a frame ends at."""

    clip_frames: int
    states: int
    hop_samples: int
    window_samples: int
    sample_rate_hz: int
    hop_ms: float
    reset: bool = True
    """False: the state is never reset (continuous mode); `clip_frames` is then the frames per
    decision."""

    @classmethod
    def from_manifest(cls, manifest) -> "Schedule":
        s, f = manifest.streaming, manifest.features
        if getattr(s, "mode", "clip") == "continuous":
            return cls(s.decision_frames, 1, f.hop_samples, f.window_samples, f.sample_rate_hz,
                       f.hop_ms, reset=False)
        if s.resets > s.clip_frames:
            raise KwsError(f"streaming.resets={s.resets} exceeds streaming.clip_frames="
                           f"{s.clip_frames}: several states would start on the same frame and "
                           "make the same decision")
        return cls(s.clip_frames, s.resets, f.hop_samples, f.window_samples, f.sample_rate_hz,
                   f.hop_ms)

    @property
    def start_frames(self) -> tuple[int, ...]:
        """Frame index at which state k takes its first step."""
        return tuple(k * self.clip_frames // self.states for k in range(self.states))

    @property
    def decision_period_ms(self) -> float:
        """Average time between decisions (the K states share one clip length)."""
        return self.hop_ms * self.clip_frames / self.states

    def time_ms(self, frame_index: int) -> int:
        """End of frame `frame_index`'s last sample in ms (integer, uint32 as in the C core)."""
        end = frame_index * self.hop_samples + self.window_samples
        return (end * 1000 // self.sample_rate_hz) & UINT32_MASK

    def decisions(self, n_frames: int) -> list[tuple[int, int]]:
        """(last frame index, state k) of every decision in n_frames frames, in device order
        (by frame; states with the same frame in index order)."""
        out = []
        for k, start in enumerate(self.start_frames):
            out.extend((end, k) for end in range(start + self.clip_frames - 1, n_frames,
                                                 self.clip_frames))
        return sorted(out)
