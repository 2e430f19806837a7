"""atheris harness: kws.boards.load_board on arbitrary text as a board YAML file.

The bytes are written to <tmp>/fuzzed.yaml (any bytes: non-UTF-8 must be a KwsError too). Only
KwsError may escape, and its message must be one line naming the file.

    .venv/bin/python tests/fuzz/fuzz_board.py [libFuzzer flags] [corpus dirs]
    e.g. -runs=1000000 -seed=1 build/fuzz/corpus_board tests/fuzz/corpus/board
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["kws"]):
    from kws.boards import load_board
    from kws.errors import KwsError

PATH = os.path.join(tempfile.mkdtemp(prefix="kws-fuzz-board-"), "fuzzed.yaml")


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        board = load_board(PATH)
    except KwsError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert message.startswith(PATH), message
        return
    assert board.id == "fuzzed", board.id


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
