"""Real-board builds replayed offline: each real board's generated project (shipped default
bundle) compiled with the command lines PlatformIO would run, against the upstream Arduino mbed
core, platforms and builder in ../shared/vendor (tests/vendor_build.py rebuilds those command
lines and says from which sources). This sits between test_project.py, which compiles the
Arduino glue against stub headers, and a real `pio run`, which needs downloads.

Per board (nano33, serial_m4, nano_rp2040, portenta_h7):

- the pinned platform is vendored and asks for the vendored core (framework-arduino-mbed 4.5.0);
- src/ (main.cpp and the kws core) compiles with no diagnostic at all, with the project's
  build_flags and build_src_flags where PlatformIO puts them and -Wall -Wextra -Werror last;
- on the FPU boards (nano33, serial_m4: Cortex-M4F; portenta_h7: Cortex-M7) no object of src/
  calls a software floating point helper (`arm-none-eabi-nm -u`: __aeabi_f*, __aeabi_d*,
  __aeabi_cf*/cd*, __aeabi_*2f/*2d); PlatformIO puts build_flags before the builder's
  `-mfloat-abi=soft`, build_src_flags after it;
- every undefined symbol of the src/ objects and of the libraries they use (PDM; Portenta_Audio
  for the Portenta) is defined by one of those objects, by an object of the Arduino core or
  variant compiled the same way (only the sources that define what is looked for), by an archive
  the link line names (-l on the -L path: the builder's mbed / cc_310_*, the project's
  build_flags, a library.properties ldflags; all must be found, except libmbed.a, which the
  vendor tarball lacks for all but the RP2040), or by arm-none-eabi-gcc's own libstdc++, libsupc++,
  libm, libc, libgcc, libnosys (nano.specs variants) and startup objects for the link line's
  multilib;
- no object and no named archive passes floats in VFP registers (-mfloat-abi=hard), which
  would not link with the softfp libmbed.a.

Symbols only the missing libmbed.a would define (nano33, serial_m4, portenta_h7) are accepted by
one rule, against the mbed-os headers of the board's variant (the cores/arduino/mbed folders its
includes.txt puts on the include path, each folder's own *.h):
  - a C name that those headers declare as a function (`type name(` at the start of a line) or as
    an extern variable;
  - a C++ name in namespace mbed, rtos or events whose next component (class or function) those
    headers name, or a member of a class those headers declare at global scope (CThunkBase).
Nothing else is accepted: not the Arduino API (namespace arduino, defined in the core), not
ST's PDM filter (pdm2pcm_glo.h is in libraries/Portenta_Audio, not in mbed-os), so a Portenta
project that does not name libPDMFilter_CM7_GCC_wc32.a to the linker fails here, as its link
would (test_portenta_pdm_filter_library_is_needed shows the check catches it). On nano_rp2040,
whose variant does ship libmbed.a, the rule is checked against it: it accepts only symbols
libmbed.a defines, and all the ones the kws and PDM objects need from it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from kws.codegen import project
from tests import vendor_build as vb

pytestmark = pytest.mark.slow

BUNDLE = vb.REPO / "kws" / "bundles" / "default"
BOARDS = ("nano33", "serial_m4", "nano_rp2040", "portenta_h7")
FPU_BOARDS = ("nano33", "serial_m4", "portenta_h7")
# on the project's own sources only (the Arduino core and PDM library warn by themselves)
WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
SOFT_FLOAT_HELPER = re.compile(r"__aeabi_(?:c?[fd][a-z0-9]+|[a-z0-9]*2[fd])")
OWN = "kws/library objects"


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def vendor() -> Path:
    folder = vb.vendor_dir()
    if folder is None:
        pytest.skip(f"no {vb.CORE_TARBALL} in {vb.vendor_candidate()} (set ${vb.VENDOR_ENV} "
                    "to the shared vendor folder)")
    missing = vb.missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make setup installs gcc-arm-none-eabi)")
    return folder


@pytest.fixture(scope="session")
def framework(vendor, tmp_path_factory) -> Path:
    """The vendored core, unpacked once as PlatformIO's framework-arduino-mbed package."""
    return vb.unpack_framework(vendor, tmp_path_factory.mktemp("pio") / "packages")


@pytest.fixture(scope="session")
def core_objects(tmp_path_factory) -> vb.CoreObjects:
    return vb.CoreObjects(tmp_path_factory.mktemp("core-objects"))


@pytest.fixture(scope="session")
def project_of(vendor, tmp_path_factory):
    """board id -> the folder of its project generated from the default bundle (once)."""
    folders: dict[str, Path] = {}

    def generated(board: str) -> Path:
        if board not in folders:
            folders[board] = tmp_path_factory.mktemp(board) / "project"
            project.generate(BUNDLE, board, folders[board])
        return folders[board]

    return generated


@pytest.fixture(scope="session")
def build_of(vendor, framework, project_of):
    """board id -> its project compiled like PlatformIO (once)."""
    builds: dict[str, vb.ProjectBuild] = {}

    def build(board: str) -> vb.ProjectBuild:
        if board not in builds:
            folder = project_of(board)
            builds[board] = vb.build_project(folder, framework, vendor, folder.parent / "build",
                                             WARNING_FLAGS)
        return builds[board]

    return build


# ---------------------------------------------------------------------------------------------
# Helpers


def library_failures(build: vb.ProjectBuild) -> list[str]:
    return [f"{c.source}:\n{c.stderr}" for cs in build.libraries.values() for c in cs
            if c.returncode]


def needed_symbols(objects: list[Path]) -> set[str]:
    """Undefined in some of `objects` and defined by none."""
    own = frozenset().union(*(vb.defined(o) for o in objects))
    return set().union(*(vb.undefined(o) for o in objects)) - own


def core_compiled(build: vb.ProjectBuild, core_objects: vb.CoreObjects, needed: set[str],
                  libraries: vb.LinkLibraries) -> list[vb.Compiled]:
    """The Arduino core / variant objects that may define what neither the objects nor the
    libraries do (compiled now, so they must compile)."""
    from_libraries = frozenset().union(*(d for _, d in libraries.definers()))
    compiled = core_objects.defining(build, needed - from_libraries)
    broken = [f"{c.source}:\n{c.stderr}" for c in compiled if c.returncode]
    assert not broken, "Arduino core sources do not compile:\n" + "\n".join(broken)
    return compiled


def as_definers(compiled: list[vb.Compiled]) -> list[tuple[str, frozenset[str]]]:
    return [(f"core {c.source.name}", vb.defined(c.obj)) for c in compiled]


def resolution(build: vb.ProjectBuild, core_objects: vb.CoreObjects,
               libraries: vb.LinkLibraries) -> vb.Resolution:
    objects = build.objects()
    needed = needed_symbols(objects)
    own = frozenset().union(*(vb.defined(o) for o in objects))
    definers = [(OWN, own), *as_definers(core_compiled(build, core_objects, needed, libraries)),
                *libraries.definers()]
    headers = vb.MbedHeaders.of(build.framework, build.platform) \
        if "mbed" in libraries.missing else None
    return vb.resolve(needed, definers, headers)


def referencing(build: vb.ProjectBuild, symbols) -> str:
    return "\n".join(f"  {s}: undefined in "
                     + ", ".join(o.name for o in build.objects() if s in vb.undefined(o))
                     for s in sorted(symbols))


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("board", BOARDS)
def test_pinned_platform_uses_the_vendored_core(board, vendor, project_of, tmp_path):
    pio = vb.read_pio_env(project_of(board) / "platformio.ini", tmp_path / "packages")
    platform = vb.find_platform(vendor, pio["platform"], pio["board"])
    wanted = vb.framework_version_range(platform)
    assert vb.tilde_accepts(wanted, vb.CORE_VERSION), (
        f"{pio['platform']} wants {vb.FRAMEWORK_PACKAGE} {wanted}, the vendored core is "
        f"{'.'.join(map(str, vb.CORE_VERSION))}")


@pytest.mark.parametrize("board", BOARDS)
def test_project_sources_compile_without_warnings(board, build_of):
    build = build_of(board)
    for c in build.project:
        assert c.returncode == 0 and c.stderr == "", (
            f"{c.source.name} ({board}):\n{c.stderr}\ncommand: {' '.join(c.command)}")


@pytest.mark.parametrize("board", FPU_BOARDS)
def test_kws_objects_use_the_fpu(board, build_of):
    build = build_of(board)
    calls = {c.source.name: sorted(s for s in vb.undefined(c.obj) if SOFT_FLOAT_HELPER.fullmatch(s))
             for c in build.project if c.returncode == 0}
    calls = {name: helpers for name, helpers in calls.items() if helpers}
    float_flags = [f for f in build.project[0].command if f.startswith(("-mfloat-abi", "-mfpu"))]
    assert not calls, (f"soft-float helpers called on {board} (float flags in order: "
                       f"{' '.join(float_flags)}): {calls}")


@pytest.mark.parametrize("board", BOARDS)
def test_every_undefined_symbol_is_defined(board, build_of, core_objects):
    build = build_of(board)
    assert not library_failures(build), "\n".join(library_failures(build))
    assert all(c.returncode == 0 for c in build.project), "src/ does not compile"
    libraries = vb.link_libraries(build.link_env)
    assert set(libraries.missing) <= {"mbed"}, (
        f"the link line names -l{' -l'.join(libraries.missing)}, found nowhere on its -L path "
        f"{list(build.link_env.libpath)}")
    res = resolution(build, core_objects, libraries)
    assert not res.unresolved, (f"{board}: the link would leave these undefined:\n{res.report()}"
                                f"\n{referencing(build, res.unresolved)}")


@pytest.mark.parametrize("board", BOARDS)
def test_objects_and_named_archives_link_with_softfp(board, build_of):
    """No object of src/ or its libraries and no archive the link names uses the hard-float
    calling convention: that would not link with the softfp libmbed.a whatever the symbols."""
    build = build_of(board)
    archives = list(vb.link_libraries(build.link_env).named.values())
    hard = [m for path in [*build.objects(), *archives] for m in vb.hard_float_members(path)]
    assert not hard, f"{board}: hard-float (VFP register arguments) objects: {hard}"


def test_portenta_pdm_filter_library_is_needed(build_of, core_objects):
    """Without the libraries the project names in build_flags (PlatformIO's default: the
    Portenta_Audio folder on the library path, nothing named), the PDM filter is undefined."""
    build = build_of("portenta_h7")
    named = vb.parse_flag_text(build.pio.get("build_flags", "")).libs
    assert named, "portenta_h7's platformio.ini build_flags names no library (-l...)"
    without = replace(build.link_env, libs=tuple(n for n in build.link_env.libs
                                                    if n not in named))
    res = resolution(build, core_objects, vb.link_libraries(without))
    in_named = frozenset().union(*(vb.defined(p) for n, p in
                                   vb.link_libraries(build.link_env).named.items() if n in named))
    assert res.unresolved and set(res.unresolved) <= in_named, res.report()
    assert any(s.startswith("PDM_Filter") for s in res.unresolved), res.report()


def test_mbed_rule_matches_rp2040_libmbed(build_of, core_objects):
    """Where the variant ships libmbed.a, the rule used for the other boards accepts only what
    it defines, among what the kws, PDM and compiled core objects need and nothing else defines
    (the core's needs add Arduino API symbols of core files not compiled: must be refused), and
    all the symbols the kws and PDM objects need from it."""
    build = build_of("nano_rp2040")
    libraries = vb.link_libraries(build.link_env)
    assert "mbed" in libraries.named, "the RP2040 variant in the vendor tarball has libmbed.a"
    libmbed_path = str(libraries.named["mbed"])
    libmbed = vb.defined(libraries.named["mbed"])
    needed = needed_symbols(build.objects())
    core = core_compiled(build, core_objects, needed, libraries)
    core_needs = set().union(*(vb.undefined(c.obj) for c in core))
    others = [d for n, d in [(OWN, frozenset().union(*(vb.defined(o) for o in build.objects()))),
                             *as_definers(core), *libraries.definers()] if n != libmbed_path]
    sample = {s for s in needed | core_needs if not any(s in d for d in others)}
    names = vb.demangle(sample)
    headers = vb.MbedHeaders.of(build.framework, build.platform)
    accepted = {s for s in sample if vb.libmbed_would_define(s, names[s], headers)}
    assert needed & libmbed, "the kws and PDM objects need nothing from libmbed.a"
    assert sample - libmbed, "no symbol outside libmbed.a in the sample: refusal is not tested"
    assert accepted <= libmbed, ("accepted, not in libmbed.a: "
                                 f"{sorted(names[s] for s in accepted - libmbed)}")
    missed = (needed & sample & libmbed) - accepted
    assert not missed, f"needed, in libmbed.a, refused: {sorted(names[s] for s in missed)}"
