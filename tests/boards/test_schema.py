"""Board files: the shipped ones are valid; every kind of mistake is one line naming the file,
the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from kws import boards_dir
from kws.boards import Board, board_path, list_boards, load_board, load_by_id
from kws.boards import schema
from kws.errors import KwsError

SHIPPED = ("nano33", "nano_rp2040", "portenta_h7", "qemu_m4", "qemu_m55", "qemu_m7", "serial_m4")

# Line numbers below refer to these two texts.
REAL = """\
name: Test Board
core: cortex-m4f
clock_hz: 64000000
flash_bytes: 1048576
ram_bytes: 262144
budget:
  flash_bytes: 524288
  ram_bytes: 65536
platformio:
  platform: nordicnrf52@10.11.0
  board: nano33ble
  framework: arduino
  monitor_speed: 115200
audio:
  source: pdm
  sample_rate_hz: 16000
  block_samples: 512
  gain: 20
  settle_ms: 2000
led:
  pin: LED_BUILTIN
  active_low: false
power:
  active_ua_per_mhz: 52.0
  supply_v: 3.0
"""

QEMU = """\
name: Test QEMU
core: cortex-m4f
clock_hz: 25000000
flash_bytes: 4194304
ram_bytes: 262144
budget:
  flash_bytes: 524288
  ram_bytes: 65536
platformio:
  platform: kws-qemu
  board: qemu_m4
  framework: none
audio:
  source: semihosting
  sample_rate_hz: 16000
  block_samples: 512
power:
  active_ua_per_mhz: 52.0
  supply_v: 3.0
qemu:
  machine: mps2-an386
  cpu: cortex-m4
"""

QEMU_SECTION = "qemu:\n  machine: mps2-an386\n  cpu: cortex-m4\n"


def edit(base: str, old: str, new: str) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def load_text(tmp_path: Path, monkeypatch, text: str, name: str = "bad.yaml") -> Board:
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(text, encoding="utf-8")
    return load_board(Path(name))


def error_of(tmp_path: Path, monkeypatch, text: str, name: str = "bad.yaml") -> str:
    with pytest.raises(KwsError) as info:
        load_text(tmp_path, monkeypatch, text, name)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# Valid files


@pytest.mark.parametrize("board_id", SHIPPED)
def test_shipped_boards_load(board_id):
    board = load_by_id(board_id)
    assert board.id == board_id
    assert board.budget.flash_bytes <= board.flash_bytes
    assert board.budget.ram_bytes <= board.ram_bytes
    assert board.is_emulated == board_id.startswith("qemu_")
    assert board.is_emulated == (board.qemu is not None)
    assert Board.model_validate(board.model_dump()) == board


def test_exactly_the_shipped_boards_sorted():
    assert [b.id for b in list_boards()] == list(SHIPPED)
    assert sorted(p.stem for p in boards_dir().glob("*.yaml")) == list(SHIPPED)


def test_emulated_boards_match_the_qemu_harness():
    from kws.emulate.qemu import MACHINES

    for board in list_boards():
        if board.is_emulated:
            machine = MACHINES[board.core]
            assert (board.qemu.machine, board.qemu.cpu) == (machine.name, machine.cpu)
            assert board.platformio.platform == schema.PLATFORM_QEMU
            assert board.platformio.board == board.id
        else:
            assert "@" in board.platformio.platform
            assert board.platformio.framework == "arduino"


def test_the_numbers_of_the_real_boards():
    nano = load_by_id("nano33")
    assert (nano.core, nano.clock_hz, nano.flash_bytes, nano.ram_bytes) == (
        "cortex-m4f", 64_000_000, 1 << 20, 256 << 10)
    assert (nano.platformio.board, nano.audio.source) == ("nano33ble", "pdm")
    rp = load_by_id("nano_rp2040")
    assert (rp.core, rp.clock_hz, rp.flash_bytes, rp.ram_bytes) == (
        "cortex-m0plus", 133_000_000, 16 << 20, 264 << 10)
    assert rp.platformio.board == "nanorp2040connect"
    h7 = load_by_id("portenta_h7")
    assert (h7.core, h7.clock_hz, h7.flash_bytes, h7.ram_bytes) == (
        "cortex-m7", 480_000_000, 2 << 20, 1 << 20)
    assert h7.platformio.board == "portenta_h7_m7"
    serial = load_by_id("serial_m4")
    assert (serial.core, serial.audio.source, serial.audio.gain) == ("cortex-m4f", "serial", None)


def test_base_texts_are_valid(tmp_path, monkeypatch):
    real = load_text(tmp_path, monkeypatch, REAL, "real.yaml")
    assert real.id == "real" and not real.is_emulated and real.led.pin == "LED_BUILTIN"
    qemu = load_text(tmp_path, monkeypatch, QEMU, "qemu.yaml")
    assert qemu.is_emulated and qemu.led is None and qemu.audio.gain is None
    assert qemu.platformio.monitor_speed == 115200 and qemu.audio.settle_ms == 0


@pytest.mark.parametrize("text", [
    edit(REAL, "pin: LED_BUILTIN", "pin: 13"),
    edit(REAL, "pin: LED_BUILTIN", "pin: 0"),
    edit(REAL, "led:\n  pin: LED_BUILTIN\n  active_low: false\n", ""),
    edit(REAL, "  gain: 20\n", ""),
    edit(REAL, "  monitor_speed: 115200\n", ""),
    edit(REAL, "active_ua_per_mhz: 52.0", "active_ua_per_mhz: 52"),
    edit(REAL, "nordicnrf52@10.11.0", "platformio/nordicnrf52@10.11.0"),
    edit(REAL, "source: pdm", "source: i2s"),
    edit(edit(REAL, "source: pdm", "source: serial"), "  gain: 20\n", ""),
    edit(REAL, "name: Test Board", "name: 'Board #2 (rev. B)'"),
    REAL + "qemu:\n",  # an empty section is no section
], ids=["led-int", "led-zero", "no-led", "no-gain", "default-baud", "int-for-float",
        "owner-prefix", "i2s", "serial", "name-punctuation", "empty-qemu"])
def test_valid_variants(tmp_path, monkeypatch, text):
    load_text(tmp_path, monkeypatch, text, "ok.yaml")


def test_boards_are_frozen():
    board = load_by_id("nano33")
    with pytest.raises(ValidationError):
        board.clock_hz = 1


def test_every_field_has_a_description():
    models = [Board, schema.Budget, schema.PlatformIO, schema.Audio, schema.Led, schema.Power,
              schema.Qemu]
    for model in models:
        assert issubclass(model, BaseModel)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


# ---------------------------------------------------------------------------------------------
# Invalid files: (text, expected substrings); the file is bad.yaml in the working folder.

INVALID = {
    "unknown-key": (edit(REAL, "ram_bytes: 262144", "ram_byts: 262144"),
                    "bad.yaml:5 ram_byts: unknown key; did you mean ram_bytes?"),
    "nested-unknown-key": (edit(REAL, "  sample_rate_hz: 16000", "  sample_rate: 16000"),
                           "bad.yaml:16 audio.sample_rate: unknown key; did you mean "
                           "sample_rate_hz?"),
    "missing-key": (edit(REAL, "  flash_bytes: 524288\n", ""),
                    "bad.yaml:6 budget: missing key flash_bytes"),
    "missing-top-key": (edit(REAL, "clock_hz: 64000000\n", ""),
                        "bad.yaml:1 missing key clock_hz"),
    "missing-section": (edit(REAL, "power:\n  active_ua_per_mhz: 52.0\n  supply_v: 3.0\n", ""),
                        "bad.yaml:1 missing key power"),
    "negative-size": (edit(REAL, "ram_bytes: 262144", "ram_bytes: -4"),
                      "bad.yaml:5 ram_bytes: must be greater than 0"),
    "zero-clock": (edit(REAL, "clock_hz: 64000000", "clock_hz: 0"),
                   "bad.yaml:3 clock_hz: must be greater than 0"),
    "zero-rate": (edit(REAL, "sample_rate_hz: 16000", "sample_rate_hz: 0"),
                  "bad.yaml:16 audio.sample_rate_hz: must be greater than 0"),
    "negative-budget": (edit(REAL, "  ram_bytes: 65536", "  ram_bytes: -1"),
                        "bad.yaml:8 budget.ram_bytes: must be greater than 0"),
    "bool-as-int": (edit(REAL, "clock_hz: 64000000", "clock_hz: true"),
                    "bad.yaml:3 clock_hz: must be an integer"),
    "string-for-int": (edit(REAL, "clock_hz: 64000000", 'clock_hz: "64 MHz"'),
                       "bad.yaml:3 clock_hz: must be an integer"),
    "quoted-number": (edit(REAL, "flash_bytes: 1048576", 'flash_bytes: "1048576"'),
                      "bad.yaml:4 flash_bytes: must be an integer"),
    "float-for-int": (edit(REAL, "clock_hz: 64000000", "clock_hz: 64000000.0"),
                      "bad.yaml:3 clock_hz: must be an integer"),
    "string-for-float": (edit(REAL, "active_ua_per_mhz: 52.0", 'active_ua_per_mhz: "52"'),
                         "bad.yaml:24 power.active_ua_per_mhz: must be a number"),
    "bool-for-float": (edit(REAL, "supply_v: 3.0", "supply_v: true"),
                       "bad.yaml:25 power.supply_v: must be a number"),
    "int-for-bool": (edit(REAL, "active_low: false", "active_low: 1"),
                     "bad.yaml:22 led.active_low: must be true or false"),
    "unknown-core": (edit(REAL, "core: cortex-m4f", "core: cortex-m4"),
                     ("bad.yaml:2 core: 'cortex-m4' is not a known core",
                      "did you mean cortex-m4f?")),
    "unknown-source": (edit(REAL, "source: pdm", "source: pdn"),
                       ("bad.yaml:15 audio.source: must be one of", "did you mean pdm?")),
    "unknown-framework": (edit(REAL, "framework: arduino", "framework: mbed"),
                          "bad.yaml:12 platformio.framework: must be one of"),
    "section-not-mapping": (edit(REAL, "budget:\n  flash_bytes: 524288\n  ram_bytes: 65536\n",
                                 "budget: 512\n"),
                            "bad.yaml:6 budget: must be a mapping"),
    "budget-over-flash": (edit(REAL, "  flash_bytes: 524288", "  flash_bytes: 2097152"),
                          "bad.yaml:7 budget.flash_bytes: 2097152 exceeds flash_bytes 1048576"),
    "budget-over-ram": (edit(REAL, "  ram_bytes: 65536", "  ram_bytes: 300000"),
                        "bad.yaml:8 budget.ram_bytes: 300000 exceeds ram_bytes 262144"),
    "link-library-outside": (edit(REAL, "  monitor_speed: 115200",
                                  "  monitor_speed: 115200\n  link_libraries: [../libX.a]"),
                             "bad.yaml:14 platformio.link_libraries: '../libX.a': expected a "
                             "relative path inside the framework package"),
    "link-library-not-archive": (edit(REAL, "  monitor_speed: 115200",
                                      "  monitor_speed: 115200\n  link_libraries: [src/filter.h]"),
                                 "platformio.link_libraries: 'src/filter.h': expected"),
    "unpinned-platform": (edit(REAL, "nordicnrf52@10.11.0", "nordicnrf52"),
                          "bad.yaml:10 platformio.platform: must be pinned as name@X.Y.Z"),
    "half-pinned-platform": (edit(REAL, "nordicnrf52@10.11.0", "nordicnrf52@10.11"),
                             "bad.yaml:10 platformio.platform: must be pinned"),
    "range-platform": (edit(REAL, "nordicnrf52@10.11.0", "nordicnrf52@^10.11.0"),
                       "bad.yaml:10 platformio.platform: must be pinned"),
    "bad-pio-board": (edit(REAL, "board: nano33ble", "board: nano 33"),
                      "bad.yaml:11 platformio.board: must be a PlatformIO board id"),
    "framework-none-on-real-board": (edit(REAL, "framework: arduino", "framework: none"),
                                     "bad.yaml:12 platformio.framework: none is only for the "
                                     "kws-qemu platform"),
    "semihosting-on-real-board": (edit(edit(REAL, "source: pdm", "source: semihosting"),
                                       "  gain: 20\n", ""),
                                  "bad.yaml:15 audio.source: semihosting is for emulated boards"),
    "kws-qemu-with-pdm": (edit(QEMU, "source: semihosting", "source: pdm"),
                          "bad.yaml:14 audio.source: must be semihosting on the kws-qemu "
                          "platform"),
    "kws-qemu-with-arduino": (edit(QEMU, "framework: none", "framework: arduino"),
                              "bad.yaml:12 platformio.framework: must be none on the kws-qemu "
                              "platform"),
    "semihosting-without-qemu": (edit(QEMU, QEMU_SECTION, ""),
                                 "bad.yaml:14 audio.source: semihosting needs a qemu section"),
    "qemu-section-on-real-board": (REAL + QEMU_SECTION,
                                   "bad.yaml:26 qemu: only for emulated boards"),
    "machine-mismatch": (edit(QEMU, "machine: mps2-an386", "machine: mps2-an385"),
                         "bad.yaml:21 qemu.machine: must be mps2-an386 for cortex-m4f"),
    "cpu-mismatch": (edit(QEMU, "cpu: cortex-m4", "cpu: cortex-m7"),
                     "bad.yaml:22 qemu.cpu: must be cortex-m4 for cortex-m4f"),
    "core-not-emulated": (edit(QEMU, "core: cortex-m4f", "core: cortex-m33"),
                          "bad.yaml:2 core: no QEMU machine emulates cortex-m33"),
    "flash-beyond-harness": (edit(QEMU, "flash_bytes: 4194304", "flash_bytes: 8388608"),
                             "bad.yaml:4 flash_bytes: 8388608 exceeds the 4194304 code bytes"),
    "bad-led-pin": (edit(REAL, "pin: LED_BUILTIN", "pin: 13x"),
                    "bad.yaml:21 led.pin: must be a C identifier (e.g. LED_BUILTIN) or a pin "
                    "number >= 0"),
    "negative-led-pin": (edit(REAL, "pin: LED_BUILTIN", "pin: -1"),
                         "bad.yaml:21 led.pin: must be a C identifier"),
    "bool-led-pin": (edit(REAL, "pin: LED_BUILTIN", "pin: true"),
                     "bad.yaml:21 led.pin: must be a C identifier"),
    "name-with-quote": (edit(REAL, "name: Test Board", 'name: Test "Board"'),
                        "bad.yaml:1 name: must not contain '\"'"),
    "name-with-backslash": (edit(REAL, "name: Test Board", "name: Test \\ Board"),
                            "bad.yaml:1 name: must not contain"),
    "name-with-control-char": (edit(REAL, "name: Test Board", 'name: "Test\\tBoard"'),
                               "bad.yaml:1 name: must be printable ASCII"),
    "name-too-long": (edit(REAL, "name: Test Board", "name: " + "x" * 61),
                      "bad.yaml:1 name: must be 1 to 60 characters"),
    "name-empty": (edit(REAL, "name: Test Board", 'name: ""'),
                   "bad.yaml:1 name: must be 1 to 60 characters"),
    "block-not-power-of-two": (edit(REAL, "block_samples: 512", "block_samples: 500"),
                               "bad.yaml:17 audio.block_samples: must be a power of two from 64 "
                               "to 4096"),
    "block-too-big": (edit(REAL, "block_samples: 512", "block_samples: 8192"),
                      "bad.yaml:17 audio.block_samples: must be a power of two"),
    "gain-without-mic": (edit(REAL, "source: pdm", "source: serial"),
                         "bad.yaml:18 audio.gain: only for pdm and i2s sources"),
    "duplicate-key": (REAL + "clock_hz: 1\n",
                      "bad.yaml:26 clock_hz: duplicate key (first at line 3)"),
    "nested-duplicate-key": (edit(REAL, "  gain: 20\n", "  gain: 20\n  gain: 21\n"),
                             "bad.yaml:19 audio.gain: duplicate key (first at line 18)"),
    "id-in-file": (REAL + "id: other\n",
                   "bad.yaml:26 id: not a board setting; the id is the file name"),
    "non-text-key": (REAL + "1: 2\n", "bad.yaml:26 1: keys must be words"),
    "yaml-syntax-error": (edit(REAL, "core: cortex-m4f", "core: [cortex-m4f"),
                          "bad.yaml:3 YAML syntax: expected ',' or ']'"),
    "tab-indent": (edit(REAL, "  ram_bytes: 65536", "\tram_bytes: 65536"),
                   "bad.yaml:8 YAML syntax: found character '\\t'"),
    "two-documents": (REAL + "---\nname: other\n",
                      "bad.yaml:26 YAML syntax: expected a single document"),
    "empty-file": ("", "bad.yaml:1 empty file"),
    "only-comments": ("# nothing here\n", "bad.yaml:1 empty file"),
    "list-at-top": ("- name: Test\n- core: cortex-m4f\n",
                    "bad.yaml:1 top level: expected a mapping of board settings, got a list"),
    "text-at-top": ("just some words\n", "bad.yaml:1 top level: expected a mapping"),
    "alias-bomb": ("".join(f"{k}: &{k} [{', '.join([f'*{p}' if p != ' ' else 'x'] * 9)}]\n"
                           for p, k in zip(" abcdefg", "abcdefgh")),
                   "nested too deeply or too large"),
    "recursive-alias": ("a: &a [*a]\n", "bad.yaml:1 a: nested too deeply or too large"),
    "python-tag": ('name: !!python/object/apply:os.system ["echo pwned > pwned.txt"]\n',
                   "bad.yaml:1 name: YAML tag !!python/object/apply:os.system is not allowed"),
    "python-scalar-tag": ("name: !!python/name:os.system\n",
                          "bad.yaml:1 name: could not determine a constructor"),
}


@pytest.mark.parametrize("text, expected", INVALID.values(), ids=INVALID.keys())
def test_invalid_board_files(tmp_path, monkeypatch, text, expected):
    message = error_of(tmp_path, monkeypatch, text)
    for part in (expected,) if isinstance(expected, str) else expected:
        assert part in message
    assert message.startswith("bad.yaml:")  # the path as the caller gave it
    assert not (tmp_path / "pwned.txt").exists()


def test_no_did_you_mean_when_nothing_is_close(tmp_path, monkeypatch):
    message = error_of(tmp_path, monkeypatch, REAL + "wifi_ssid: home\n")
    assert message == "bad.yaml:26 wifi_ssid: unknown key"


def test_file_name_must_be_a_valid_id(tmp_path, monkeypatch):
    message = error_of(tmp_path, monkeypatch, REAL, "Nano-33.yaml")
    assert message.startswith("Nano-33.yaml:1 id: board id 'Nano-33'")


def test_unreadable_files(tmp_path):
    with pytest.raises(KwsError, match=r"nope\.yaml: cannot read"):
        load_board(tmp_path / "nope.yaml")
    (tmp_path / "latin1.yaml").write_bytes("name: Caf\xe9\n".encode("latin-1"))
    with pytest.raises(KwsError, match=r"latin1\.yaml: not UTF-8"):
        load_board(tmp_path / "latin1.yaml")


def test_absolute_path_is_shown_as_given(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(REAL, "clock_hz: 64000000", "clock_hz: 0"))
    with pytest.raises(KwsError) as info:
        load_board(path)
    assert str(info.value).startswith(f"{path}:3 clock_hz:")


def test_board_ids():
    assert board_path("nano33").name == "nano33.yaml"
    with pytest.raises(KwsError, match=r"unknown board 'nano34' \(known: nano33, .*\); did you "
                       r"mean nano33\?"):
        board_path("nano34")
    with pytest.raises(KwsError, match="unknown board"):
        load_by_id("../boards/nano33")


def test_rule_errors_name_their_key_without_the_loader():
    data = load_by_id("nano33").model_dump()
    data["budget"]["ram_bytes"] = data["ram_bytes"] + 1
    with pytest.raises(ValidationError, match=r"budget\.ram_bytes: \d+ exceeds ram_bytes"):
        Board.model_validate(data)
