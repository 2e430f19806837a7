# kws: keyword-spotting firmware generator.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
KWS := $(VENV)/bin/kws
PY := $(VENV)/bin/python
BOARD ?= qemu_m4
DATA ?=
# The shared data folder: speech_commands, speech_commands_extra, negatives (kws.data.dataset.shared_data)
SHARED_DATA := ../shared/data

# Debian packages the tool chain needs (cross compiler, C library, emulator, TTS engines, sox,
# clang with the libFuzzer/ASan/UBSan runtime for tests/fuzz).
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib \
	qemu-system-arm espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox \
	python3-venv clang libclang-rt-14-dev

RUN ?= runs/default
# The bundle firmware is made from: RUN when it holds one; else, for the default RUN, the bundle
# shipped in the package (made by the `make train` recipe on the shared data), so a fresh clone
# builds firmware without an hour of training; a RUN= folder without a bundle is trained first.
SHIPPED_BUNDLE := kws/bundles/default
MODEL ?= $(if $(wildcard $(RUN)/manifest.json),$(RUN),$(if $(filter runs/default,$(RUN)),$(SHIPPED_BUNDLE),$(RUN)))
# Synthetic clips that join the training split only (real speakers stay in validation/test):
# +2.4 points in 5-fold speaker CV on the shared data (77.8% vs 75.4% int8). SYNTH= disables.
SYNTH ?= build/synth
SYNTH_ARGS := --per-word 200 --seed 1
BENCH_JOBS ?= 2
# Training settings file for `make train` and bench's cross-validation (empty: the defaults),
# e.g. CONFIG=kws/presets/gru80-hop32.yaml (wider GRU that still fits the M4 budgets).
CONFIG ?=

# Firmware: BOARD= a file in boards/ (kws boards list), BACKEND=native|tflm, WAV= audio for
# emulated boards (default: build/demo.wav, keywords from the shared data or synthetic).
BACKEND ?= native
FIRMWARE_DIR = build/firmware/$(BOARD)
PIO := $(VENV)/bin/pio
WAV ?= build/demo.wav

.PHONY: help setup apt venv pio test demo train bench clean firmware flash monitor emulate data

help:
	@echo "make setup   install Debian packages (apt-get) and the .venv with kws"
	@echo "make demo    synthesize/load data and show what kws does today (see README)"
	@echo "make data DATA=DIR  download the full Speech Commands v0.02 (2.4 GB, resumable, SHA-256 checked) into DIR; then make demo DATA=DIR"
	@echo "make test    run the test suite"
	@echo "make train   train the default model into $(RUN) [DATA=folder] [CONFIG=kws/presets/gru80-hop32.yaml]"
	@echo "make bench   benchmarks of $(RUN) incl. 5-fold cross-validation of the default recipe (estimated ~4 h here: 5 x ~50 min of training), JSON in build/bench.json [CONFIG=]"
	@echo "make firmware BOARD=b  generate the PlatformIO project in build/firmware/<b>"
	@echo "make flash BOARD=b     build and upload it (emulated boards: run it in QEMU on WAV=...)"
	@echo "make monitor BOARD=b   serial monitor of a real board"
	@echo "make emulate [WAV=f]   the qemu_m4 firmware on a WAV file"
	@echo "make clean   remove build outputs (keeps .venv and runs/)"

setup: apt venv pio

# PlatformIO offline: tool-scons from the PyPI wheel, the Debian cross compiler as its
# toolchain package (kws/pio/setup.py; fast when done already).
pio: venv
	@$(PY) -m kws.pio.setup

# Idempotent: installs only the packages dpkg does not know yet.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "setup: Debian packages present"; exit 0; fi; \
	cmd="apt-get install -y --no-install-recommends$$missing"; \
	if [ "$$(id -u)" = 0 ]; then pre=""; \
	elif sudo -n true 2>/dev/null; then pre="sudo "; \
	else echo "setup: missing Debian packages; run:"; \
		echo "  sudo apt-get update && sudo $$cmd"; exit 1; fi; \
	echo "setup: installing$$missing"; \
	$${pre}apt-get update -qq && DEBIAN_FRONTEND=noninteractive $${pre}$$cmd

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

test: setup
	$(VENV)/bin/pytest -q

demo: setup
	@$(KWS) demo $(if $(DATA),--data $(DATA),)

data: setup
	@test -n "$(DATA)" || { echo "make data: give the folder, e.g. make data DATA=data/speech_commands"; exit 2; }
	$(KWS) data get speech-commands --out $(DATA)

train: setup
	$(if $(SYNTH),$(KWS) synth --out $(SYNTH) $(SYNTH_ARGS),)
	$(KWS) train --out $(RUN) --force $(if $(DATA),--data $(DATA),) $(if $(SYNTH),--train-only $(SYNTH),) $(if $(CONFIG),--config $(CONFIG),)
	@# Recognizer defaults tuned on validation-speaker streams (a clip model: K <= 2, the M4
	@# cost budget; the default streaming model runs one state, K is not searched).
	$(KWS) streams tune --model $(RUN) --ks 1,2 --apply $(if $(DATA),--data $(DATA),) \
		|| echo "train: stream tuning skipped (the manifest keeps the default recognizer)"

bench: setup
	@mkdir -p build
	$(if $(SYNTH),$(KWS) synth --out $(SYNTH) $(SYNTH_ARGS),)
	$(KWS) bench --json --cv --jobs $(BENCH_JOBS) --model $(RUN) $(if $(DATA),--data $(DATA),) $(if $(SYNTH),--train-only $(SYNTH),) $(if $(CONFIG),--config $(CONFIG),) > build/bench.json
	@echo "bench: wrote build/bench.json"

# A default bundle is trained when none exists.
$(RUN)/manifest.json:
	$(MAKE) train RUN=$(RUN)

# Regenerated when the bundle, the board file or kws itself changed (kws writes only files
# whose bytes differ, so PlatformIO rebuilds only what changed).
KWS_SOURCES := $(shell find kws firmware_templates -name '*.py' -o -name '*.j2' 2>/dev/null)
$(FIRMWARE_DIR)/platformio.ini: $(MODEL)/manifest.json $(MODEL)/model.tflite boards/$(BOARD).yaml \
		$(VENV)/.installed $(KWS_SOURCES)
	$(KWS) generate --model $(MODEL) --board $(BOARD) --out $(FIRMWARE_DIR) --backend $(BACKEND) --force

firmware: setup $(FIRMWARE_DIR)/platformio.ini

build/demo.wav: $(VENV)/.installed
	$(KWS) demo-wav --out $@ $(if $(DATA),--data $(DATA),)

# Emulated boards: "upload" runs the ELF in qemu-system-arm on KWS_WAV. Real boards: the
# platform must be installed or the registry reachable, checked first (seconds) so a missing
# platform is said before any bundle is trained or project generated.
flash: setup $(if $(filter qemu_%,$(BOARD)),$(WAV),)
	$(KWS) boards preflight $(BOARD)
	$(MAKE) --no-print-directory firmware BOARD=$(BOARD) BACKEND=$(BACKEND) RUN=$(RUN) MODEL=$(MODEL)
	KWS_WAV=$(abspath $(WAV)) $(PIO) run -d $(FIRMWARE_DIR) -e $(BOARD) -t upload

monitor: setup
	$(PIO) device monitor -d $(FIRMWARE_DIR) -e $(BOARD)

emulate:
	$(MAKE) flash BOARD=qemu_m4 WAV=$(WAV)

clean:
	rm -rf build out .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
