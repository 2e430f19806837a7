"""Streaming keyword decisions: the portable C core (audio ring -> features -> step model ->
recognizer) rendered from the manifest, and its exact Python mirror.

- `recognizer`: integer-only posterior averaging and firing (RecognizerConfig, Recognizer).
- `stream`: the whole core in Python (Schedule, StreamRunner, StreamResult).
- `csources`: the four C files rendered from a Manifest (core_sources, c_string).
- `host`: the rendered C compiled for the host through ctypes (HostRecognizer, HostApp; L3).
"""

from kws.recognize.recognizer import Recognizer, RecognizerConfig
from kws.recognize.stream import Schedule, StreamResult, StreamRunner

__all__ = ["Recognizer", "RecognizerConfig", "Schedule", "StreamResult", "StreamRunner"]
