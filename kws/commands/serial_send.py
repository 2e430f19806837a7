"""`kws stream`: send a WAV to a board with `audio.source: serial` as framed PCM over USB serial.

Frame (parsed by firmware_templates/project/kws_serial_frame.c.j2): b"KW", uint16 LE sample
count (1..block_samples), the int16 LE samples, uint16 LE CRC-16/CCITT-FALSE over the count
and sample bytes. Frames are paced at the audio's real-time rate so the board's ring buffer
never has to hold more than a few blocks; the board's `heard ...` lines are echoed.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from kws.errors import KwsError

SYNC = b"KW"


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(samples: np.ndarray) -> bytes:
    """One frame of 1..65535 int16 samples."""
    pcm = np.asarray(samples, dtype="<i2")
    if not 1 <= pcm.size <= 0xFFFF:
        raise ValueError(f"a frame carries 1..65535 samples, not {pcm.size}")
    body = struct.pack("<H", pcm.size) + pcm.tobytes()
    return SYNC + body + struct.pack("<H", crc16_ccitt(body))


def frames(audio: np.ndarray, block_samples: int) -> Iterator[bytes]:
    for start in range(0, len(audio), block_samples):
        yield frame(audio[start:start + block_samples])


def stream_wav(port: str, wav: Path, block_samples: int, sample_rate_hz: int, baud: int,
               echo: Callable[[str], None], settle_s: float = 0.0) -> int:
    """Send the WAV (converted to int16 mono at the board's rate) in real time; echo what the
    board prints until one second after the end. Returns the number of frames sent."""
    import serial  # pyserial, installed with platformio

    from kws.data.audio import read_wav, to_int16

    audio = to_int16(read_wav(wav, sample_rate_hz))
    try:
        link = serial.Serial(port, baud, timeout=0)
    except (serial.SerialException, OSError) as exc:
        raise KwsError(f"{port}: cannot open serial port ({exc})") from None
    sent = 0
    with link:
        time.sleep(settle_s)
        start = time.monotonic()
        for i, data in enumerate(frames(audio, block_samples)):
            due = start + i * block_samples / sample_rate_hz
            while (now := time.monotonic()) < due:
                _echo_lines(link, echo)
                time.sleep(min(0.005, due - now))
            link.write(data)
            sent += 1
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            _echo_lines(link, echo)
            time.sleep(0.01)
    return sent


def _echo_lines(link, echo: Callable[[str], None]) -> None:
    data = link.read(4096)
    if data:
        for line in data.decode(errors="replace").splitlines():
            if line.strip():
                echo(line)
