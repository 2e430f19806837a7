"""`kws generate`: a model bundle + a board file -> a complete PlatformIO project folder.

Python prepares every value (board numbers, C arrays, platformio.ini lines); the templates in
firmware_templates/ only print them. Output is deterministic (same bundle + board -> same
bytes), written only inside the output folder, and only files whose bytes changed are touched
so PlatformIO rebuilds incrementally. A `.kws-generated` list records what kws wrote, so a
regeneration removes files it no longer produces (e.g. after switching backends) and never
touches anything else; a non-empty folder without that list is refused unless forced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kws.codegen import footprint
from kws.codegen.firmware_models import firmware_model
from kws.csource.render import render, write_tree
from kws.csource.targets import arduino_mbed_float_flags
from kws.errors import KwsError
from kws.export.read import Bundle, load_bundle

GENERATED_LIST = ".kws-generated"
# Compile flags for our sources in every project: no FMA contraction, no fast-math, so the
# device computes the very bits the host emulation computes.
NUMERIC_FLAGS = ("-ffp-contract=off", "-fno-fast-math")


@dataclass(frozen=True)
class Budget:
    """What the kws part of the firmware needs on the board, against the board's budget."""

    flash_bytes: int
    ram_bytes: int
    flash_budget: int
    ram_budget: int
    detail: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
                "flash_budget_bytes": self.flash_budget, "ram_budget_bytes": self.ram_budget,
                **{k: v for k, v in self.detail.items()}}


@dataclass(frozen=True)
class Project:
    out_dir: Path
    board_id: str
    backend: str
    digest: str
    files: Mapping[str, str]
    written: tuple[Path, ...]
    removed: tuple[Path, ...]
    budget: Budget

    def summary(self) -> dict:
        return {"out": str(self.out_dir), "board": self.board_id, "backend": self.backend,
                "bundle_sha256": self.digest, "files": sorted(self.files),
                "written": len(self.written), "removed": len(self.removed),
                **self.budget.as_dict()}


def bundle_digest(bundle: Bundle) -> str:
    """sha256 over manifest.json and model.tflite: names the bundle in every banner."""
    h = hashlib.sha256()
    h.update((bundle.folder / "manifest.json").read_bytes())
    h.update(b"\0")
    h.update(bundle.tflite)
    return h.hexdigest()


def resolve_board(board: str):
    """A board id from boards/ or a path to a board YAML file."""
    from kws.boards import load_board, load_by_id

    if board.endswith((".yaml", ".yml")) or "/" in board:
        return load_board(Path(board))
    return load_by_id(board)


# ---------------------------------------------------------------------------------------------
# Sources


def _core_sources(bundle: Bundle, digest: str) -> dict[str, str]:
    from kws.features import ctables
    from kws.recognize.csources import core_sources

    return {**ctables.sources(bundle.manifest.features, digest),
            **core_sources(bundle.manifest, digest)}


def _config_context(board, sample_rate_hz: int) -> dict:
    from kws.recognize.csources import c_string

    led = board.led
    audio = board.audio
    return {
        "board_id": board.id,
        "board_name_comment": board.name.replace("*/", "* /"),
        "board_name_c": c_string(board.name),
        "clock_hz": board.clock_hz,
        "sample_rate_hz": sample_rate_hz,
        "block_samples": audio.block_samples,
        "settle_ms": audio.settle_ms,
        "has_mic_gain": 0 if audio.gain is None else 1,
        "mic_gain": 0 if audio.gain is None else int(audio.gain),
        "serial_baud": board.platformio.monitor_speed,
        "has_led": 0 if led is None else 1,
        "led_pin": 0 if led is None else led.pin,
        "led_active_low": 0 if led is None else int(bool(led.active_low)),
    }


def _glue_sources(board, digest: str, sample_rate_hz: int) -> dict[str, str]:
    ctx = {"board_id": board.id, "audio_source": board.audio.source,
           "sample_rate_hz": sample_rate_hz, "frame_samples": board.audio.block_samples}
    if board.is_emulated:
        from kws.csource.machines import harness_sources

        return {**harness_sources(board.core, digest),
                "main.c": render("project/qemu_main.c.j2", ctx, digest)}
    files = {"main.cpp": render("project/arduino_main.cpp.j2", ctx, digest)}
    if board.audio.source == "serial":
        files["kws_serial_frame.h"] = render("project/kws_serial_frame.h.j2", ctx, digest)
        files["kws_serial_frame.c"] = render("project/kws_serial_frame.c.j2", ctx, digest)
    return files


def _arduino_mbed(board) -> bool:
    """Built by PlatformIO's Arduino mbed builder (every real board); emulated boards are built
    by kws's own platform with -mfloat-abi=hard."""
    return not board.is_emulated and board.platformio.framework == "arduino"


def real_float_flags(board) -> tuple[str, ...]:
    """The float flags an Arduino mbed build of the board ends with; () for emulated boards."""
    return arduino_mbed_float_flags(board.core) if _arduino_mbed(board) else ()


def real_build_flags(board) -> tuple[str, ...]:
    """platformio.ini build_flags of a real board: the precompiled core libraries its board
    file names, as -l options (PlatformIO already puts a precompiled library's folder on the
    library path, but names none of its archives to the linker)."""
    if not _arduino_mbed(board):
        return ()
    return tuple(f"-l{path.rsplit('/', 1)[1][3:-2]}" for path in board.platformio.link_libraries)


def _ini_lines(board, backend: str) -> list[str]:
    """The [env:<board>] lines of platformio.ini, every value prepared here."""
    pio = board.platformio
    lines = []
    if board.is_emulated:
        from kws.pio import setup as pio_setup

        # The local platform finds the Debian toolchain package that `make setup` prepared.
        lines += [f"platform = symlink://{pio_setup.platform_dir()}",
                  f"board = {pio.board}",
                  "board_build.ldscript = kws_link.ld"]
    else:
        lines += [f"platform = {pio.platform}", f"board = {pio.board}",
                  f"framework = {pio.framework}"]
    lines.append(f"monitor_speed = {pio.monitor_speed}")
    flags = real_build_flags(board)
    if flags:
        lines.append("build_flags = " + " ".join(flags))
    # build_src_flags come after the mbed builder's -mfloat-abi=soft (build_flags come before
    # it: PlatformIO 6 adds them, then runs the framework script), so the float ABI goes here;
    # it then covers our src/ only, and the core and libraries stay soft float, which links
    # with softfp.
    lines.append("build_src_flags = " + " ".join((*real_float_flags(board), *NUMERIC_FLAGS)))
    lines += [f"lib_deps = {dep}" for dep in firmware_model(backend).lib_deps]
    return lines


def firmware_sources(bundle: Bundle, board, backend: str, digest: str) -> dict[str, str]:
    """{file name: text} of every C/C++ file and header of the board's firmware (no
    platformio.ini): the portable core, the model, the board glue and kws_config.h."""
    rate = bundle.manifest.features.sample_rate_hz
    return {**_core_sources(bundle, digest), **firmware_model(backend).sources(bundle, digest),
            **_glue_sources(board, digest, rate),
            "kws_config.h": render("project/kws_config.h.j2", _config_context(board, rate),
                                   digest)}


def _placed(files: Mapping[str, str]) -> dict[str, str]:
    """File name -> project path: headers in include/, sources in src/, the rest at the root."""
    placed = {}
    for name, text in files.items():
        if name.endswith((".h", ".hpp")):
            placed[f"include/{name}"] = text
        elif name.endswith((".c", ".cpp", ".cc")):
            placed[f"src/{name}"] = text
        else:
            placed[name] = text
    return placed


# ---------------------------------------------------------------------------------------------
# Checks


def check_compatible(bundle: Bundle, board, backend: str) -> None:
    rate = bundle.manifest.features.sample_rate_hz
    if board.audio.sample_rate_hz != rate:
        raise KwsError(f"boards/{board.id}.yaml audio.sample_rate_hz is "
                       f"{board.audio.sample_rate_hz} Hz but the model in {bundle.folder} was "
                       f"trained at {rate} Hz; set it to {rate} or retrain")
    firmware_model(backend).check(bundle, board)


def _budget(bundle: Bundle, board, backend: str, core: Mapping[str, str]) -> Budget:
    # compiled with the float flags the real build ends with, so the sizes are the board's
    measured = footprint.measure(core, board.core, real_float_flags(board))
    detail = {"core_text_bytes": measured.text, "core_data_bytes": measured.data,
              "core_bss_bytes": measured.bss}
    flash, ram = measured.flash_bytes, measured.ram_bytes
    extra_flash, extra_ram, extra = firmware_model(backend).outside_measure(bundle)
    detail.update(extra)
    flash += extra_flash
    ram += extra_ram
    b = Budget(flash, ram, board.budget.flash_bytes, board.budget.ram_bytes, detail)
    problems = []
    if b.flash_bytes > b.flash_budget:
        problems.append(f"{b.flash_bytes:,} B flash > budget.flash_bytes {b.flash_budget:,}")
    if b.ram_bytes > b.ram_budget:
        problems.append(f"{b.ram_bytes:,} B RAM > budget.ram_bytes {b.ram_budget:,}")
    if problems:
        raise KwsError(f"the model in {bundle.folder} ({bundle.manifest.state.units} units, "
                       f"{backend} backend) does not fit boards/{board.id}.yaml: "
                       f"{'; '.join(problems)} (features + model + recognizer + buffers); "
                       "train a smaller model (--units) or raise the budget")
    return b


# ---------------------------------------------------------------------------------------------
# Output folder


def _previous_files(out_dir: Path, force: bool) -> list[str]:
    """What an earlier `kws generate` wrote here; refuses a folder of someone else's files."""
    record = out_dir / GENERATED_LIST
    if record.is_file():
        try:
            return [ln for ln in record.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise KwsError(f"{record}: unreadable ({exc.strerror})") from None
    if out_dir.is_file():
        raise KwsError(f"{out_dir}: is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise KwsError(f"{out_dir}: folder holds files kws did not generate; choose an empty "
                       "folder or pass --force to write into it")
    return []


def _remove_stale(out_dir: Path, previous: list[str], current: Mapping[str, str]) -> list[Path]:
    root = out_dir.resolve()
    removed = []
    for rel in previous:
        if rel in current:
            continue
        target = (root / rel).resolve()
        if root not in target.parents or not target.is_file():
            continue  # never act on a path outside the folder
        target.unlink()
        removed.append(target)
    return removed


def generate(model_dir: Path, board: str, out_dir: Path, backend: str = "native",
             force: bool = False) -> Project:
    bundle = load_bundle(Path(model_dir))
    b = resolve_board(board) if isinstance(board, str) else board
    check_compatible(bundle, b, backend)
    digest = bundle_digest(bundle)
    impl = firmware_model(backend)
    core = {**_core_sources(bundle, digest), **impl.sources(bundle, digest)}
    measured_core = impl.measured(core)
    budget = _budget(bundle, b, backend, measured_core)
    files = _placed(firmware_sources(bundle, b, backend, digest))
    files["platformio.ini"] = render("project/platformio.ini.j2", {
        "board_id": b.id, "board_name": b.name, "backend": backend,
        "env_block": "\n".join(_ini_lines(b, backend))}, digest)
    files["kws_project.json"] = json.dumps({
        "generated_by": "kws generate", "board": b.id, "backend": backend, "bundle": str(bundle.folder),
        "bundle_sha256": digest, "labels": list(bundle.manifest.labels),
        "budget": budget.as_dict()}, indent=2) + "\n"
    out_dir = Path(out_dir)
    previous = _previous_files(out_dir, force)
    try:
        written = write_tree(out_dir, files)
        removed = _remove_stale(out_dir, previous, files)
        write_tree(out_dir, {GENERATED_LIST: "".join(f"{rel}\n" for rel in sorted(files))})
    except OSError as exc:
        raise KwsError(f"{out_dir}: cannot write the project ({exc.strerror})") from None
    return Project(out_dir, b.id, backend, digest, files, tuple(written), tuple(removed), budget)
