"""Framed serial PCM: the C parser the serial-audio boards run (host build) accepts exactly the
frames kws/commands/serial_send.py sends, drops corrupted or oversized ones into a bounded buffer, and
resynchronizes; CRC equal on both sides."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from kws.csource.host_build import build_shared
from kws.csource.render import render
from kws.commands.serial_send import crc16_ccitt, frame, frames

MAX = 64


class Parser:
    def __init__(self):
        ctx = {"frame_samples": MAX}
        lib = ctypes.CDLL(str(build_shared({
            "kws_serial_frame.h": render("project/kws_serial_frame.h.j2", ctx, "test"),
            "kws_serial_frame.c": render("project/kws_serial_frame.c.j2", ctx, "test"),
            "probe.c": '#include "kws_serial_frame.h"\n'
                       "size_t probe_size(void) { return sizeof(kws_serial_frame_t); }\n"
                       "size_t probe_count(const kws_serial_frame_t *p) { return p->count; }\n"
                       "uint32_t probe_errors(const kws_serial_frame_t *p) { return p->errors; }\n"
                       "const int16_t *probe_samples(const kws_serial_frame_t *p) "
                       "{ return p->samples; }\n"}, "kws_serial_frame")))
        lib.probe_size.restype = ctypes.c_size_t
        lib.probe_count.restype = ctypes.c_size_t
        lib.probe_errors.restype = ctypes.c_uint32
        lib.probe_samples.restype = ctypes.POINTER(ctypes.c_int16)
        lib.kws_serial_frame_push.argtypes = [ctypes.c_void_p, ctypes.c_uint8]
        lib.kws_serial_crc16.argtypes = [ctypes.c_uint16, ctypes.c_uint8]
        lib.kws_serial_crc16.restype = ctypes.c_uint16
        self.lib = lib
        self.state = ctypes.create_string_buffer(lib.probe_size())
        lib.kws_serial_frame_init(self.state)

    def feed(self, data: bytes) -> list[np.ndarray]:
        got = []
        for b in data:
            if self.lib.kws_serial_frame_push(self.state, b):
                n = self.lib.probe_count(self.state)
                got.append(np.ctypeslib.as_array(self.lib.probe_samples(self.state), (n,)).copy())
        return got

    @property
    def errors(self) -> int:
        return self.lib.probe_errors(self.state)


def test_crc_matches_python():
    p = Parser()
    data = bytes(range(256)) * 3
    crc = 0xFFFF
    for b in data:
        crc = p.lib.kws_serial_crc16(crc, b)
    assert crc == crc16_ccitt(data)
    assert crc16_ccitt(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value


def test_frames_round_trip_in_any_split():
    audio = np.random.default_rng(0).integers(-32768, 32768, 1000).astype(np.int16)
    data = b"".join(frames(audio, MAX))
    p = Parser()
    got = p.feed(data)
    assert np.array_equal(np.concatenate(got), audio) and p.errors == 0


@pytest.mark.parametrize("damage", ["flip_sample", "flip_crc", "too_long", "zero_count", "noise"])
def test_bad_frames_are_dropped_and_the_next_good_one_is_taken(damage):
    rng = np.random.default_rng(1)
    good = rng.integers(-32768, 32768, 40).astype(np.int16)
    bad = bytearray(frame(rng.integers(-100, 100, 30).astype(np.int16)))
    if damage == "flip_sample":
        bad[10] ^= 0x40
    elif damage == "flip_crc":
        bad[-1] ^= 0x01
    elif damage == "too_long":
        bad[2:4] = (MAX + 1).to_bytes(2, "little")
    elif damage == "zero_count":
        bad[2:4] = b"\0\0"
    else:
        bad = bytearray(rng.integers(0, 256, 300, dtype=np.uint8).tobytes().replace(b"K", b"k"))
    p = Parser()
    got = p.feed(bytes(bad) + frame(good))
    assert len(got) == 1 and np.array_equal(got[0], good)
    assert p.errors == (0 if damage == "noise" else 1)


def test_host_encoder_refuses_empty_frames():
    with pytest.raises(ValueError):
        frame(np.zeros(0, np.int16))
