"""kws-qemu: emulated Cortex-M boards built offline with the system arm-none-eabi-gcc.

The tool chain is not downloaded from the PlatformIO registry. `python -m kws.pio.setup` (run by
`make setup`) makes a package folder whose bin/ holds symlinks to /usr/bin/arm-none-eabi-*; this
class points the platform's `toolchain-gccarmnoneeabi` package at that folder with a
`symlink://` spec, which PlatformIO resolves without any network access. A project can still
override it with `platform_packages = toolchain-gccarmnoneeabi@symlink://<folder>`.

The folder is <cache>/pio/toolchain-gccarmnoneeabi where <cache> is $KWS_CACHE_DIR, else
$XDG_CACHE_HOME/kws, else ~/.cache/kws (the same rule as kws.pio.setup.toolchain_dir()).
"""

import os

from platformio.exception import PlatformioException
from platformio.public import PlatformBase

TOOLCHAIN = "toolchain-gccarmnoneeabi"


def kws_toolchain_dir():
    base = os.environ.get("KWS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kws"
    )
    return os.path.realpath(os.path.join(base, "pio", TOOLCHAIN))


class KwsToolchainMissing(PlatformioException):
    MESSAGE = (
        "kws-qemu: the tool chain folder {0} is missing or incomplete; run `make setup` "
        "(or `python -m kws.pio.setup`), which links Debian's arm-none-eabi-gcc there"
    )


class KwsqemuPlatform(PlatformBase):
    def __init__(self, manifest_path):
        super().__init__(manifest_path)
        options = self._manifest.get("packages", {}).get(TOOLCHAIN)
        if options is not None and not str(options.get("version", "")).startswith(
            ("symlink://", "file://")
        ):
            options["version"] = "symlink://" + kws_toolchain_dir()
            options.pop("owner", None)

    def configure_default_packages(self, options, targets):
        version = str(self.packages.get(TOOLCHAIN, {}).get("version", ""))
        if version.startswith("symlink://"):
            folder = version[len("symlink://"):]
            if not os.path.isfile(os.path.join(folder, "bin", "arm-none-eabi-gcc")):
                raise KwsToolchainMissing(folder)
        return super().configure_default_packages(options, targets)
