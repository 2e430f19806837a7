"""atheris harness: the native backend's .tflite reader on mutated model bytes.

Each input goes through kws.native.graph.parse_model, kws.native.interpret.NativeReference and
kws.native.cgen.context (specialize=False: the exhaustive specialization proofs take seconds per
new quantization and do not read the file). Only KwsError may escape. The seed corpus
(tests/fuzz/corpus/tflite) is a real step model (build_step_model(16, 12)), so the mutations
stay close to a valid flatbuffer.

    .venv/bin/python tests/fuzz/fuzz_tflite.py [libFuzzer flags] [corpus dirs]
    e.g. -runs=100000 -seed=1 -max_len=16384 build/fuzz/corpus_tflite tests/fuzz/corpus/tflite
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import atheris  # noqa: E402

with atheris.instrument_imports(include=["kws"]):
    from kws.errors import KwsError
    from kws.native import cgen, graph, interpret


def test_one_input(data: bytes) -> None:
    try:
        g = graph.parse_model(data)
    except KwsError:
        return
    assert g.tensors is not None
    try:
        interpret.NativeReference(data)
        cgen.context(data, specialize=False)
    except KwsError:
        return


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
