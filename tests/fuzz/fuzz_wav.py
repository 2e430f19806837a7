"""atheris harness: kws.data.audio.read_wav on arbitrary bytes (written to a temp file).

Only AudioError (a KwsError) may escape; anything else is a crash. A result must be float32,
mono, finite and within [-1, 1].

    .venv/bin/python tests/fuzz/fuzz_wav.py [libFuzzer flags] [corpus dirs]
    e.g. -runs=1000000 -seed=1 -max_len=8192 build/fuzz/corpus_wav tests/fuzz/corpus/wav
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["kws"]):
    import numpy as np

    from kws.data.audio import read_wav
    from kws.errors import AudioError

PATH = os.path.join(tempfile.mkdtemp(prefix="kws-fuzz-wav-"), "input.wav")


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        x = read_wav(PATH)
    except AudioError as exc:
        assert str(exc).startswith(PATH), exc  # the message names the file
        return
    assert x.dtype == np.float32 and x.ndim == 1, (x.dtype, x.shape)
    assert x.size > 0, "read_wav returned no samples instead of raising AudioError"
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 1.0), (
        f"read_wav returned samples that are not finite or beyond [-1, 1]: "
        f"{np.count_nonzero(~np.isfinite(x))} not finite of {x.size}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
