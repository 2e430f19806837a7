"""The tflm backend's model sources: kws_model.h (the same API and macros as the native C) over
the stock TensorFlow Lite Micro interpreter, the op resolver taken from the model's op list."""

from __future__ import annotations

from kws.csource.carrays import c_float, int_rows
from kws.csource.render import render
from kws.errors import KwsError

# The TFLite Micro Arduino library, pinned to one commit (TFLM publishes no versioned
# PlatformIO package). Only the tflm backend depends on it.
TFLM_LIBRARY = ("https://github.com/tensorflow/tflite-micro-arduino-examples.git"
                "#f14e2f4808b2e97405e2f0f8f05b5413456e68e5")
TFLM_LIBRARY_NAME = "tflite-micro-arduino-examples@" + TFLM_LIBRARY.rsplit("#", 1)[1][:8]


def resolver_method(op: str) -> str:
    """MicroMutableOpResolver method for a builtin op name: FULLY_CONNECTED -> AddFullyConnected."""
    if not op.replace("_", "").isalnum() or not op.isupper():
        raise KwsError(f"op name {op!r} in the manifest is not a TFLite builtin op name")
    return "Add" + "".join(part.capitalize() for part in op.split("_"))


def context(bundle) -> dict:
    import numpy as np

    from kws.native.interpret import NativeReference

    m = bundle.manifest
    ref = NativeReference(bundle.tflite, poison=False)
    inputs, outputs = list(ref.graph.inputs), list(ref.graph.outputs)
    io = ref.io
    return {
        "frame_size": ref.frame_size,
        "state_size": ref.state_size,
        "labels": ref.labels,
        "scratch_bytes": 0,
        "state_zero_point": io["state"].zero_point,
        "frame_scale": c_float(io["frame"].scale),
        "frame_zero_point": io["frame"].zero_point,
        "logits_scale": c_float(io["logits"].scale),
        "logits_zero_point": io["logits"].zero_point,
        "arena_bytes": (m.arena_bytes + 15) // 16 * 16,
        "library": TFLM_LIBRARY_NAME,
        "op_count": len(m.ops),
        "resolver_calls": [resolver_method(op) for op in m.ops],
        "frame_input": inputs.index(io["frame"].tensor),
        "state_input": inputs.index(io["state"].tensor),
        "logits_output": outputs.index(io["logits"].tensor),
        "new_state_output": outputs.index(io["new_state"].tensor),
        "tflite_bytes": len(bundle.tflite),
        "rows": int_rows(np.frombuffer(bundle.tflite, np.uint8), per_row=16),
    }


def sources(bundle, digest: str) -> dict[str, str]:
    ctx = context(bundle)
    return {"kws_model.h": render("native/kws_model.h.j2", ctx, digest),
            "kws_model_tflm.cpp": render("tflm/kws_model_tflm.cpp.j2", ctx, digest),
            "kws_model_data.h": render("tflm/kws_model_data.h.j2", ctx, digest)}
