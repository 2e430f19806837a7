"""PlatformIO integration: offline setup of PlatformIO's own packages and calling `pio` from kws.

- `kws.pio.setup` (`python -m kws.pio.setup`, run by `make setup`): installs the `tool-scons`
  core package from the PyPI `scons` wheel and links Debian's arm-none-eabi-gcc into a
  `toolchain-gccarmnoneeabi` package folder, so the local `kws-qemu` platform
  (firmware_templates/platformio/kws-qemu) builds and runs in QEMU without the PlatformIO
  registry.
- `kws.pio.run`: the `pio` executable, runs with a hard timeout, offline checks (is a stock
  platform installed, is the registry reachable) and platformio.ini validation.

PlatformIO keeps its default core folder (~/.platformio, or $PLATFORMIO_CORE_DIR when set), so
on a machine with internet the same installation builds real boards the ordinary way.
"""
