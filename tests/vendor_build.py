"""PlatformIO's build of a real-board project, replayed offline against the upstream sources in
../shared/vendor (its README.md says what they are), for tests/codegen/test_real_board_build.py.

PlatformIO cannot download platforms here, so this module rebuilds the compiler command lines
PlatformIO would run for a generated project and runs them with the Debian arm-none-eabi-gcc:

- PlatformIO core (6.x, tools/piobuild.py ProcessProgramDeps and ProcessProjectDeps) puts, in
  this order: the PLATFORMIO macro, the board JSON's build.extra_flags, the project's
  build_flags, then the framework script; the project's own src/ gets build_src_flags on top.
  Flags are sorted into SCons variables the way SCons' ParseFlags does (`-D` -> CPPDEFINES,
  `-I` -> CPPPATH, `-L`/`-l` -> LIBPATH/LIBS, `-std=` -> CFLAGS/CXXFLAGS, `-Wl,` -> LINKFLAGS,
  anything else -> CCFLAGS) and SCons' gcc tool lays a compile out as
  `$CC -o $TARGET -c $CFLAGS $CCFLAGS $_CPPDEFFLAGS $_CPPINCFLAGS $SOURCES` (CXXFLAGS for C++).
- The framework script is builder-framework-arduino-core-mbed's arduino-core-mbed.py at the
  revision the pinned platform uses (`framework_env` restates it line by line and
  `check_builder_script` checks that the script still says what is restated).
- Libraries are found like PlatformIO's library dependency finder: a source's `#include` of a
  header of `libraries/<name>/src` makes that library a dependency (the finder's default for
  Arduino projects, chain+, also evaluates #if; that only adds search paths here). Each library
  compiles every source under its src/ with its own and its dependencies' folders on the
  include path; a `precompiled=true` library puts src/<build.mcu or build.cpu> on the library
  path and names nothing to the linker unless its library.properties has an `ldflags=` line.

Nothing is linked (the vendor tarball has no libmbed.a for most boards); `resolve` instead
says where the link would find each undefined symbol of chosen objects.

The command lines were compared token for token with those of a real `pio run -v` (PlatformIO
6.2.0, offline: a scratch local platform running this builder script on the portenta_h7 board
JSON, the unpacked core as framework-arduino-mbed): src/*.c, src/main.cpp, the PDM library and
cores/arduino/wiring.cpp matched exactly, and the link line named -lPDMFilter_CM7_GCC_wc32 -lmbed
inside --whole-archive, then -lstdc++ -lsupc++ -lm -lc -lgcc -lnosys.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDOR_ENV = "KWS_SHARED_VENDOR"
CORE_TARBALL = "arduino-core-mbed-4.5.0.tar.xz"
CORE_VERSION = (4, 5, 0)
FRAMEWORK_PACKAGE = "framework-arduino-mbed"
CC, CXX, NM, CXXFILT, READELF = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-nm",
                                 "arm-none-eabi-c++filt", "arm-none-eabi-readelf")
# Which revision of the builder (a git submodule of each platform, builder/frameworks/arduino/
# mbed-core) each vendored platform release uses, as vendor/README.md records it.
BUILDER_OF_PLATFORM = {"nordicnrf52@10.11.0": "66ff9c5", "raspberrypi@1.19.0": "66ff9c5",
                       "ststm32@19.6.0": "029e576"}
# PlatformIO core's own macro, PLATFORMIO=MMmmpp, as PlatformIO 6.2.0 (the venv's) defines it;
# no source here reads it.
PLATFORMIO_MACRO = "PLATFORMIO=60200"
# What the builder's _LIBFLAGS append after the archives, as nano.specs / nosys.specs rename
# them (-lc -> -lc_nano, -lstdc++ -> -lstdc++_nano, -lsupc++ -> -lsupc++_nano, + -lnosys).
TOOLCHAIN_LIBS = ("stdc++_nano", "supc++_nano", "m", "c_nano", "gcc", "nosys")
# The startup objects gcc links by default (the builder passes -nostdlib to compiles only).
TOOLCHAIN_OBJECTS = ("crt0.o", "crti.o", "crtbegin.o", "crtend.o", "crtn.o")
# The parts of arduino-core-mbed.py that framework_env restates.
BUILDER_SNIPPETS = (
    'cflags = set(load_flags("cflags"))', 'cxxflags = set(load_flags("cxxflags"))',
    "CCFLAGS=sorted(list(ccflags))", "CFLAGS=sorted(list(cflags - ccflags))",
    "CXXFLAGS=sorted(list(cxxflags - ccflags))",
    'CPPDEFINES=[d.replace("-D", "") for d in load_flags("defines")]',
    '"-iprefix" + os.path.join(FRAMEWORK_DIR, "cores", board.get("build.core"))',
    '"includes.txt"),\n        "-nostdlib"', '("ARDUINO", 10810),\n        "ARDUINO_ARCH_MBED"',
    '"api", "deprecated"),', '"deprecated-avr-comp")', 'LIBS=["mbed"]',
    'env.Append(LIBS=["cc_310_core", "cc_310_ext", "cc_310_trng"])',
    '"-mfloat-abi=soft",\n            "-mfpu=fpv%s-d16" % fpv_version',
    'fpv_version = "4-sp" if board_cpu == "cortex-m4" else "5"',
    '("CM4_BINARY_START", "0x08100000")',
    '"--specs=nano.specs",\n        "--specs=nosys.specs"',
    '" -Wl,--no-whole-archive -lstdc++ -lsupc++ -lm -lc -lgcc -lnosys"',
)
INCLUDE_LINE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# Vendor folder


def vendor_candidate() -> Path:
    """$KWS_SHARED_VENDOR, else the first of <repo>/../shared/vendor and /work/shared/vendor
    that exists (the workspace's, for clones made elsewhere such as CI's; the same lookup as
    the shared data in kws.data.dataset)."""
    if os.environ.get(VENDOR_ENV):
        return Path(os.environ[VENDOR_ENV])
    candidates = [REPO.parent / "shared" / "vendor", Path("/work/shared/vendor")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def vendor_dir() -> Path | None:
    """The vendor folder, None when it (or its core tarball) is not there."""
    folder = vendor_candidate()
    return folder if (folder / CORE_TARBALL).is_file() else None


def missing_tools() -> list[str]:
    return [tool for tool in (CC, CXX, NM, CXXFILT, READELF) if shutil.which(tool) is None]


def unpack_framework(vendor: Path, packages_dir: Path) -> Path:
    """The core tarball unpacked where PlatformIO installs the package:
    <packages_dir>/framework-arduino-mbed."""
    packages_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(vendor / CORE_TARBALL) as tar:
        tops = {name.split("/", 1)[0] for name in tar.getnames()}
        assert len(tops) == 1, f"{CORE_TARBALL}: expected one top folder, got {sorted(tops)}"
        tar.extractall(packages_dir, filter="data")
    framework = packages_dir / FRAMEWORK_PACKAGE
    (packages_dir / tops.pop()).rename(framework)
    return framework


@dataclass(frozen=True)
class Platform:
    """One vendored PlatformIO platform release and the board the project names in it."""

    spec: str
    folder: Path
    board_id: str
    board: dict
    builder_script: Path

    def board_get(self, key: str, default=""):
        value = self.board
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


def find_platform(vendor: Path, spec: str, board_id: str) -> Platform:
    """The vendored platform of a pinned `name@version` and its board JSON."""
    name, _, version = spec.partition("@")
    folder = vendor / f"platformio-platform-{name}-{version}"
    have = sorted(p.name for p in vendor.glob("platformio-platform-*"))
    assert folder.is_dir(), f"platform = {spec}: no {folder.name} in {vendor} (have {have})"
    board_json = folder / "boards" / f"{board_id}.json"
    assert board_json.is_file(), f"board = {board_id}: no {board_json}"
    assert spec in BUILDER_OF_PLATFORM, f"platform = {spec}: which builder revision it uses is " \
        "not recorded in BUILDER_OF_PLATFORM"
    revision = BUILDER_OF_PLATFORM[spec]
    script = vendor / f"platformio-builder-framework-arduino-core-mbed-{revision}" / \
        "arduino-core-mbed.py"
    return Platform(spec, folder, board_id, json.loads(board_json.read_text()), script)


def framework_version_range(platform: Platform) -> str:
    """The framework-arduino-mbed version the platform asks for (platform.json, e.g. ~4.5.0)."""
    packages = json.loads((platform.folder / "platform.json").read_text())["packages"]
    return packages[FRAMEWORK_PACKAGE]["version"]


def tilde_accepts(requirement: str, version: tuple[int, ...]) -> bool:
    """Semver `~X.Y.Z`: X.Y equal and at least Z (the only form these platforms use)."""
    assert requirement.startswith("~"), requirement
    want = tuple(int(p) for p in requirement[1:].split("."))
    return version[:2] == want[:2] and version >= want


def check_builder_script(script: Path) -> None:
    """The builder still says what framework_env restates."""
    text = script.read_text()
    missing = [s for s in BUILDER_SNIPPETS if s not in text]
    assert not missing, f"{script}: framework_env no longer matches it, missing {missing}"


# ---------------------------------------------------------------------------------------------
# platformio.ini


def read_pio_env(ini: Path, packages_dir: Path) -> dict[str, str]:
    """The options of the one [env:...] section of a platformio.ini, with PlatformIO's
    `${platformio.packages_dir}` (the only interpolation allowed here) substituted."""
    parser = configparser.RawConfigParser()
    parser.read(ini)
    envs = [s for s in parser.sections() if s.startswith("env:")]
    assert len(envs) == 1, f"{ini}: expected one [env:...] section, got {envs}"
    values = {"platformio.packages_dir": str(packages_dir)}

    def substitute(match: re.Match) -> str:
        assert match.group(1) in values, f"{ini}: unknown interpolation {match.group(0)}"
        return values[match.group(1)]

    return {key: re.sub(r"\$\{([^}]+)\}", substitute, parser.get(envs[0], key))
            for key in parser.options(envs[0])}


# ---------------------------------------------------------------------------------------------
# SCons construction variables


@dataclass(frozen=True)
class Env:
    """The SCons variables that reach compile and link lines, in the order they were appended."""

    cflags: tuple[str, ...] = ()
    ccflags: tuple[str, ...] = ()
    cxxflags: tuple[str, ...] = ()
    cppdefines: tuple[str, ...] = ()
    cpppath: tuple[str, ...] = ()
    libpath: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()
    linkflags: tuple[str, ...] = ()

    def append(self, other: Env) -> Env:
        return Env(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def prepend_paths(self, paths: list[str]) -> Env:
        """SCons PrependUnique(CPPPATH=...)."""
        rest = tuple(p for p in self.cpppath if p not in paths)
        return replace(self, cpppath=tuple(dict.fromkeys(paths)) + rest)

    def compile_command(self, source: Path, obj: Path) -> list[str]:
        cxx = source.suffix in (".cpp", ".cc", ".cxx")
        lang = self.cxxflags if cxx else self.cflags
        return [CXX if cxx else CC, "-o", str(obj), "-c", *lang, *self.ccflags,
                *(f"-D{d}" for d in self.cppdefines), *(f"-I{p}" for p in self.cpppath),
                str(source)]


def parse_flags(words: list[str]) -> Env:
    """SCons' ParseFlags for the flag forms platformio.ini and board JSON files use."""
    out = {f: [] for f in Env.__dataclass_fields__}
    takes_next = {"-D": "cppdefines", "-I": "cpppath", "-L": "libpath", "-l": "libs"}
    pending = None
    for word in words:
        if pending:
            out[pending].append(word)
            pending = None
        elif word in takes_next:
            pending = takes_next[word]
        elif word[:2] in takes_next:
            out[takes_next[word[:2]]].append(word[2:])
        elif word.startswith("-std="):
            out["cxxflags" if "++" in word else "cflags"].append(word)
        elif word.startswith("-Wl,"):
            out["linkflags"].append(word)
        elif word in ("-include", "-imacros", "-isystem", "-iquote", "-idirafter"):
            out["ccflags"].append(word)
            pending = "ccflags"
        else:
            out["ccflags"].append(word)
    return Env(**{k: tuple(v) for k, v in out.items()})


def parse_flag_text(text: str) -> Env:
    return parse_flags(shlex.split(text or ""))


# ---------------------------------------------------------------------------------------------
# arduino-core-mbed.py


def _variant_flags(variant: Path, name: str) -> list[str]:
    path = variant / f"{name}.txt"
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() \
        else []


def _flash_layout_defines(platform: Platform) -> tuple[str, ...]:
    """configure_flash_layout, for the M7 boards this project has (no *_m4 targets)."""
    if not platform.board_id.startswith(("portenta_h7", "opta", "nicla_vision", "giga")):
        return ()
    start = {"50_50": "0x08100000", "75_25": "0x08180000", "100_0": "0x60000000"}
    layout = platform.board_get("build.arduino.flash_layout", "50_50")
    return (f"CM4_BINARY_START={start[layout]}",) if layout in start else ()


def _fpu_flags(platform: Platform) -> tuple[str, ...]:
    """configure_fpu_flags: soft float after the variant's softfp on Cortex-M4/M7."""
    cpu = platform.board_get("build.cpu")
    if cpu not in ("cortex-m4", "cortex-m7"):
        return ()
    return ("-mfloat-abi=soft", "-mfpu=fpv%s-d16" % ("4-sp" if cpu == "cortex-m4" else "5"))


def framework_env(framework: Path, platform: Platform) -> Env:
    """What arduino-core-mbed.py appends to the environment, in its order."""
    variant = framework / "variants" / platform.board_get("build.variant")
    core = framework / "cores" / platform.board_get("build.core")
    cflags, cxxflags = set(_variant_flags(variant, "cflags")), set(_variant_flags(variant,
                                                                                "cxxflags"))
    ccflags = cflags & cxxflags
    # defines.txt is written for a shell (-DX=\"y.h\"); PlatformIO's command goes through one
    defines = [shlex.split(d)[0].replace("-D", "") for d in _variant_flags(variant, "defines")]
    libs = ["mbed"]
    if platform.board_get("build.mcu").startswith("nrf52840"):
        libs += ["cc_310_core", "cc_310_ext", "cc_310_trng"]
    fpu = _fpu_flags(platform)
    return Env(
        cflags=tuple(sorted(cflags - ccflags)),
        ccflags=(*sorted(ccflags), f"-iprefix{core}", f"@{variant / 'includes.txt'}",
                 "-nostdlib", *fpu),
        cxxflags=tuple(sorted(cxxflags - ccflags)),
        cppdefines=(*defines, "ARDUINO=10810", "ARDUINO_ARCH_MBED",
                    *_flash_layout_defines(platform)),
        cpppath=(str(core), str(core / "api" / "deprecated"),
                 str(core / "api" / "deprecated-avr-comp"), str(variant)),
        libpath=(str(variant), str(variant / "libs")),
        libs=tuple(libs),
        linkflags=(*_variant_flags(variant, "ldflags"), "--specs=nano.specs",
                   "--specs=nosys.specs", "-Wl,--as-needed", *fpu))


def program_env(framework: Path, platform: Platform, build_flags: str) -> Env:
    """ProcessProgramDeps: PLATFORMIO macro, board extra_flags, build_flags, framework."""
    return (Env(cppdefines=(PLATFORMIO_MACRO,))
            .append(parse_flag_text(platform.board_get("build.extra_flags")))
            .append(parse_flag_text(build_flags))
            .append(framework_env(framework, platform)))


# ---------------------------------------------------------------------------------------------
# Libraries (the library dependency finder, simplified)


@dataclass(frozen=True)
class Library:
    name: str
    src: Path
    properties: dict[str, str]

    def sources(self) -> list[Path]:
        return sorted(p for p in self.src.rglob("*") if p.suffix in (".c", ".cpp", ".S")
                      and not {"examples", "example", "test", "tests"} & set(p.parts))

    def provides(self, header: str) -> bool:
        return (self.src / header).is_file()

    def link_env(self, platform: Platform) -> Env:
        """library.properties ldflags, and the precompiled folder on the library path."""
        env = parse_flag_text(self.properties.get("ldflags", ""))
        if self.properties.get("precompiled") in ("true", "full"):
            for key in ("build.mcu", "build.cpu"):
                folder = self.src / platform.board_get(key)
                if platform.board_get(key) and folder.is_dir():
                    return replace(env, libpath=(str(folder), *env.libpath))
        return env


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines of a library.properties (commented lines are not options)."""
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines()
             if "=" in ln and not ln.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def framework_libraries(framework: Path) -> list[Library]:
    return [Library(p.parent.name, p.parent / "src", read_properties(p))
            for p in sorted((framework / "libraries").glob("*/library.properties"))]


def includes_of(files: list[Path]) -> set[str]:
    return {m for f in files for m in INCLUDE_LINE.findall(f.read_text(errors="replace"))}


def library_closure(files: list[Path], libraries: list[Library]) -> list[Library]:
    """The libraries `files` include a header of, and theirs, in the order found."""
    found: list[Library] = []
    queue = list(files)
    while queue:
        headers = includes_of(queue)
        queue = []
        for lib in libraries:
            if lib not in found and any(lib.provides(h) for h in headers):
                found.append(lib)
                queue += lib.sources() + sorted(lib.src.rglob("*.h"))
    return found


# ---------------------------------------------------------------------------------------------
# Compiling and symbols


@dataclass(frozen=True)
class Compiled:
    source: Path
    obj: Path
    command: tuple[str, ...]
    returncode: int
    stderr: str


def compile_all(env: Env, sources: list[Path], out_dir: Path, workers: int = 2) -> list[Compiled]:
    """Compile each source to out_dir/<index>_<name>.o with env (at most `workers` at a time)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(item: tuple[int, Path]) -> Compiled:
        i, src = item
        obj = out_dir / f"{i:03d}_{src.stem}.o"
        cmd = env.compile_command(src, obj)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return Compiled(src, obj, tuple(cmd), proc.returncode, proc.stderr)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, enumerate(sources)))


def _nm(args: list[str]) -> list[str]:
    proc = subprocess.run([NM, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{NM} {' '.join(args)}: {proc.stderr}"
    return proc.stdout.splitlines()


@cache
def undefined(obj: Path) -> frozenset[str]:
    return frozenset(ln.split()[-1] for ln in _nm(["-u", str(obj)]) if ln.strip())


@cache
def defined(path: Path) -> frozenset[str]:
    """External symbols an object or archive defines (weak ones included)."""
    out = set()
    for ln in _nm(["-g", "--defined-only", str(path)]):
        parts = ln.split()
        if len(parts) == 3:
            out.add(parts[2])
    return frozenset(out)


def demangle(symbols) -> dict[str, str]:
    names = sorted(symbols)
    proc = subprocess.run([CXXFILT], input="\n".join(names), capture_output=True, text=True,
                          check=True)
    return dict(zip(names, proc.stdout.splitlines(), strict=True))


def multilib_flags(env: Env) -> list[str]:
    """The -mcpu/-mthumb/-mfloat-abi/-mfpu of the link line (the last of each wins)."""
    return [f for f in env.linkflags if f.startswith(("-mcpu=", "-mthumb", "-mfloat-abi=",
                                                        "-mfpu="))]


def toolchain_file(name: str, flags: list[str]) -> Path:
    """A library or startup object of arm-none-eabi-gcc for the multilib `flags` select."""
    out = subprocess.run([CC, *flags, f"-print-file-name={name}"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert os.path.isabs(out), f"{CC} {' '.join(flags)} has no {name}"
    return Path(out)


def find_named_library(name: str, libpath: tuple[str, ...]) -> Path | None:
    """Where `-l<name>` is found on the -L path, as the linker searches it (static only)."""
    for folder in libpath:
        candidate = Path(folder) / f"lib{name}.a"
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Symbols only libmbed.a would define


C_DECLARATION = r"^[ \t]*(?!return\b)(?:[A-Za-z_][\w]*[ \t\*]+)+\**{name}[ \t]*\("
CXX_WRAPPERS = ("vtable for ", "typeinfo for ", "typeinfo name for ", "VTT for ",
                "guard variable for ", "non-virtual thunk to ", "virtual thunk to ")
MBED_NAMESPACES = ("mbed", "rtos", "events")


@dataclass
class MbedHeaders:
    """The mbed-os headers a variant puts on the include path (its includes.txt folders under
    cores/<core>/mbed, each folder's own *.h), read once."""

    texts: list[str]

    @classmethod
    def of(cls, framework: Path, platform: Platform) -> MbedHeaders:
        core = framework / "cores" / platform.board_get("build.core")
        variant = framework / "variants" / platform.board_get("build.variant")
        prefix = "-iwithprefixbefore"
        folders = [Path(f"{core}{ln[len(prefix):]}") for ln in
                   _variant_flags(variant, "includes") if ln.startswith(prefix)]
        mbed = core / "mbed"
        texts = [h.read_text(errors="replace") for d in folders
                 if d == mbed or mbed in d.parents for h in sorted(d.glob("*.h"))]
        return cls(texts)

    def declares_function(self, name: str) -> bool:
        pattern = re.compile(C_DECLARATION.format(name=re.escape(name)), re.MULTILINE)
        return any(name in t and pattern.search(t) for t in self.texts)

    def declares_extern(self, name: str) -> bool:
        pattern = re.compile(rf"^[ \t]*extern\b[^;(]*\b{re.escape(name)}\b[^;(]*;", re.MULTILINE)
        return any(name in t and pattern.search(t) for t in self.texts)

    def declares_class(self, name: str) -> bool:
        pattern = re.compile(rf"^[ \t]*(?:template[ \t]*<[^>]*>[ \t]*)?(?:class|struct)[ \t]+"
                             rf"(?:MBED_\w+[ \t]+)*{re.escape(name)}\b[^;]*$", re.MULTILINE)
        return any(name in t and pattern.search(t) for t in self.texts)

    def mentions(self, word: str) -> bool:
        pattern = re.compile(rf"\b{re.escape(word)}\b")
        return any(word in t and pattern.search(t) for t in self.texts)


def qualified_parts(demangled: str) -> list[str]:
    """`vtable for mbed::I2C` -> [mbed, I2C]; `arduino::Print::print(double, int)` ->
    [arduino, Print, print]: the scopes of the name, without parameters or template arguments."""
    for wrapper in CXX_WRAPPERS:
        if demangled.startswith(wrapper):
            demangled = demangled[len(wrapper):]
    name = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", demangled)).split("(", 1)[0]
    return [p for p in name.split("::") if p]


def libmbed_would_define(symbol: str, demangled: str, headers: MbedHeaders) -> bool:
    """The rule for symbols only the missing libmbed.a would define, against the variant's
    mbed-os headers: a C++ name in namespace mbed, rtos or events whose next component the
    headers name; a C++ member of a class the headers declare at global scope (class X / struct
    X); a C name the headers declare as a function (`type name(`) or an extern variable."""
    if symbol.startswith("_Z"):
        scopes = qualified_parts(demangled)
        if len(scopes) < 2:
            return False
        if scopes[0] in MBED_NAMESPACES:
            return headers.mentions(scopes[1])
        return headers.declares_class(scopes[0])
    return headers.declares_function(symbol) or headers.declares_extern(symbol)


# ---------------------------------------------------------------------------------------------
# Where each undefined symbol would come from


@dataclass
class Resolution:
    """Undefined symbols of some objects: found (symbol -> what defines it) or unresolved."""

    found: dict[str, str] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)   # symbol -> demangled

    def report(self) -> str:
        return "\n".join(f"  {s}  ({d})" if d != s else f"  {s}"
                         for s, d in sorted(self.unresolved.items()))


def resolve(needed: set[str], definers: list[tuple[str, frozenset[str]]],
            mbed_headers: MbedHeaders | None) -> Resolution:
    """First definer that has each symbol; then the libmbed rule (when mbed_headers is given,
    i.e. when libmbed.a is missing)."""
    res = Resolution()
    left = set()
    for sym in needed:
        where = next((name for name, syms in definers if sym in syms), None)
        if where:
            res.found[sym] = where
        else:
            left.add(sym)
    names = demangle(left) if left else {}
    for sym in sorted(left):
        if mbed_headers is not None and libmbed_would_define(sym, names[sym], mbed_headers):
            res.found[sym] = "libmbed.a (mbed-os header rule)"
        else:
            res.unresolved[sym] = names[sym]
    return res


# ---------------------------------------------------------------------------------------------
# One project, built


PROJECT_SUFFIXES = (".c", ".cpp", ".cc", ".S")


@dataclass
class ProjectBuild:
    """A generated project compiled the way PlatformIO would (src/ and its libraries), plus what
    its link line would name."""

    platform: Platform
    pio: dict[str, str]
    env: Env                        # the program's environment (everything but src/ extras)
    project: list[Compiled]         # src/*
    libraries: dict[str, list[Compiled]]
    link_env: Env                   # env + what the libraries add to LIBPATH/LIBS/LINKFLAGS
    framework: Path

    def objects(self) -> list[Path]:
        """The objects of src/ and of its libraries."""
        return [c.obj for c in self.project] + [c.obj for cs in self.libraries.values()
                                                  for c in cs]


def project_sources(project_dir: Path) -> list[Path]:
    return sorted(p for p in (project_dir / "src").rglob("*") if p.suffix in PROJECT_SUFFIXES)


def build_project(project_dir: Path, framework: Path, vendor: Path, out_dir: Path,
                  src_extra_flags: tuple[str, ...] = ()) -> ProjectBuild:
    """Compile src/ (with build_src_flags, then src_extra_flags) and every library it uses."""
    pio = read_pio_env(project_dir / "platformio.ini", framework.parent)
    assert pio.get("framework") == "arduino", f"{project_dir}: not an Arduino project"
    platform = find_platform(vendor, pio["platform"], pio["board"])
    check_builder_script(platform.builder_script)
    env = program_env(framework, platform, pio.get("build_flags", ""))
    sources = project_sources(project_dir)
    libs = library_closure(sources, framework_libraries(framework))
    compiled, link_env = {}, env
    for lib in libs:
        deps = library_closure(lib.sources() + sorted(lib.src.rglob("*.h")), libs)
        lib_env = env.prepend_paths([str(lib.src), *(str(d.src) for d in deps if d != lib)])
        compiled[lib.name] = compile_all(lib_env, lib.sources(), out_dir / "lib" / lib.name)
        link_env = link_env.append(lib.link_env(platform))
    src_env = env.prepend_paths([str(project_dir / "include"), str(project_dir / "src"),
                                 *(str(lib.src) for lib in libs)])
    src_env = src_env.append(parse_flag_text(pio.get("build_src_flags", "")))
    src_env = src_env.append(parse_flags(list(src_extra_flags)))
    project = compile_all(src_env, sources, out_dir / "src")
    return ProjectBuild(platform, pio, env, project, compiled, link_env, framework)


def core_sources(framework: Path, platform: Platform) -> list[Path]:
    """What the builder compiles as FrameworkArduino (cores/<core>/**) and
    FrameworkArduinoVariant (the variant folder)."""
    core = framework / "cores" / platform.board_get("build.core")
    variant = framework / "variants" / platform.board_get("build.variant")
    return sorted(p for d in (core, variant) for p in d.rglob("*")
                  if p.suffix in (".c", ".cpp", ".S"))


def lookup_words(demangled: str) -> list[str]:
    """How a definition of a symbol is spelled in source: `Print::print` for a member,
    `millis` for a function or variable, `UART` for a class's vtable or typeinfo."""
    parts = qualified_parts(demangled)
    return ["::".join(parts[-2:])] if len(parts) > 1 and parts[-2][:1].isupper() \
        else parts[-1:]


def _defines_pattern(word: str) -> re.Pattern:
    """`word(...) ... {` (a function body) or `Word::member(...) ... {` for a class word."""
    name = re.escape(word) + (r"::~?\w+" if "::" not in word and word[:1].isupper() else "")
    return re.compile(rf"(?<![\w:.>]){name}\s*\([^;{{}}]*\)[^;{{}}]*\{{")


def sources_defining(sources: list[Path], words: set[str]) -> list[Path]:
    """Sources with a function body for each word, or that name the word at all when no source
    has one (variables, and definitions this pattern misses)."""
    texts = {s: s.read_text(errors="replace") for s in sources}
    chosen: set[Path] = set()
    for word in words:
        bodies = [s for s, t in texts.items() if word in t and _defines_pattern(word).search(t)]
        mention = re.compile(rf"(?<![\w:]){re.escape(word)}\b")
        chosen.update(bodies or [s for s, t in texts.items() if word in t and mention.search(t)])
    return sorted(chosen)


class CoreObjects:
    """Objects of the Arduino core and variant, compiled on demand with a program's environment
    (shared by boards whose environments are equal). A core source is compiled when it seems to
    define a symbol looked for (sources_defining); whether it does is up to nm, so a source this
    misses leaves its symbols unresolved, it never hides one."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._compiled: dict[tuple[Env, Path], Compiled] = {}
        self._batches = 0

    def defining(self, build: ProjectBuild, symbols: set[str]) -> list[Compiled]:
        names = demangle(symbols) if symbols else {}
        words = {w for s in symbols for w in lookup_words(names[s])}
        sources = sources_defining(core_sources(build.framework, build.platform), words)
        todo = [s for s in sources if (build.env, s) not in self._compiled]
        if todo:
            self._batches += 1
            for c in compile_all(build.env, todo, self.out_dir / f"batch{self._batches:03d}"):
                self._compiled[(build.env, c.source)] = c
        return [self._compiled[(build.env, s)] for s in sources]


@dataclass(frozen=True)
class LinkLibraries:
    """The archives the link line names: the program's -l's found on its -L path (missing: the
    -l's found nowhere), and the toolchain's libraries for the link line's multilib."""

    named: dict[str, Path]
    missing: tuple[str, ...]
    toolchain: dict[str, Path]

    def definers(self) -> list[tuple[str, frozenset[str]]]:
        return [(str(p), defined(p)) for p in (*self.named.values(), *self.toolchain.values())]


def link_libraries(link_env: Env) -> LinkLibraries:
    found = {n: find_named_library(n, link_env.libpath) for n in dict.fromkeys(link_env.libs)}
    flags = multilib_flags(link_env)
    return LinkLibraries({n: p for n, p in found.items() if p},
                         tuple(n for n, p in found.items() if p is None),
                         {n: toolchain_file(n, flags) for n in
                          (*(f"lib{lib}.a" for lib in TOOLCHAIN_LIBS), *TOOLCHAIN_OBJECTS)})


def hard_float_members(path: Path) -> list[str]:
    """Members of an object or archive that pass floats in VFP registers (-mfloat-abi=hard),
    which do not link with the variants' softfp libmbed.a or the soft/softfp objects."""
    proc = subprocess.run([READELF, "-A", str(path)], capture_output=True,
                          text=True, check=True)
    members, current = [], str(path)
    for ln in proc.stdout.splitlines():
        if ln.startswith("File: "):
            current = ln[len("File: "):]
        elif "Tag_ABI_VFP_args: VFP registers" in ln:
            members.append(current)
    return members
