"""cortex-m0plus in QEMU's micro:bit machine (nRF51, Cortex-M0: the M0+'s ARMv6-M Thumb
instruction set): the harness runs, the machine is what the harness assumes (ARMv6-M, 16 KB of
RAM, SysTick at 62.5 instructions per tick), and the default bundle's model, front end and
recognizer compute in soft float / portable C exactly what the host builds compute."""

from __future__ import annotations

import shutil

import pytest

from kws.commands.demo import SHIPPED_BUNDLE
from kws.emulate import bench, qemu
from kws.features.params import FeatureParams

CORE = "cortex-m0plus"
MACHINE = qemu.machine(CORE)

pytestmark = pytest.mark.skipif(
    shutil.which(qemu.QEMU) is not None and not qemu.machine_available(CORE),
    reason=f"{qemu.QEMU} has no {MACHINE.name} machine (needed for {CORE})")


def _run_main(body: str, name: str) -> qemu.QemuResult:
    main = ('#include <stdint.h>\n#include "kws_harness.h"\n\nint main(void)\n{\n' + body +
            '\n    kws_print("survived\\n");\n    return 0;\n}\n')
    return qemu.run_sources({"main.c": main}, CORE, name, timeout=30)


def test_hello_exits_0_with_the_16_mhz_systick():
    src = {"main.c": qemu.program_source("kws_hello_main.c.j2")}
    result = qemu.run_sources(src, CORE, "hello", ["-DKWS_HELLO_STATUS=0"], timeout=30)
    assert result.status == 0
    assert result.stdout.startswith("hello from kws\n")
    # 16 MHz SysTick, 1 ns per instruction: exactly 62.5 instructions per tick
    assert int(result.stdout.split("ipt_q10 ")[1]) == 64000 == 1024 * MACHINE.instructions_per_tick


def test_linker_script_uses_the_nrf51_memory():
    ld = qemu.harness_sources(CORE)["kws_link.ld"]
    assert "LENGTH = 262144" in ld and "LENGTH = 16384" in ld
    assert f"__kws_stack_top - {MACHINE.stack_bytes};" in ld


@pytest.mark.parametrize("body, faults", [
    ("    (void)*(volatile uint32_t *)0x20003FFCu;", False),  # last word of the 16 KB SRAM
    ("    (void)*(volatile uint32_t *)0x20004000u;", True),   # first word past it
    ("    (void)*(volatile uint32_t *)0x0003FFFCu;", False),  # last word of the 256 KB flash
    ('    __asm__ volatile(".inst.w 0xfb90f0f1" ::: "r0");', True),  # sdiv: v7-M only
])
def test_machine_is_armv6m_with_16k_ram(body, faults):
    result = _run_main(body, "probe")
    if faults:
        assert result.status == 0xFE and "fault" in result.stdout
    else:
        assert result.status == 0 and result.stdout.endswith("survived\n")


def test_default_model_equals_host():
    tflite = (SHIPPED_BUNDLE / "model.tflite").read_bytes()
    steps = 5  # the portable kernels on ARMv6-M: ~320k instructions per step
    cost = bench.model_cost(tflite, CORE, steps=steps)
    assert cost["machine"] == "microbit"
    assert cost["checksum"] == bench.host_model_checksum(tflite, steps=steps)
    assert cost["instructions_per_step"] > 0 and cost["instructions_per_mac"] > 0
    assert cost["text"] > 0


def test_default_features_equal_host_in_soft_float():
    """50 hops (the default count) fit the 16 KB: audio is drawn hop by hop; the libgcc soft
    float of thumb/v6-m gives the host's IEEE single-precision bits."""
    params = FeatureParams()
    cost = bench.features_cost(CORE, params)
    assert cost["frames"] == bench.HOPS - 1
    assert cost["checksum"] == bench.host_features_checksum(params)
    assert cost["instructions_per_frame"] > 0


def test_bench_reports_its_stack_high_water():
    run = bench.run_bench(CORE, features=FeatureParams(), hops=3)
    assert 0 < run.report["stack_used"] < MACHINE.stack_bytes


def test_recognizer_cost_of_the_default_bundle():
    from kws.export.read import load_bundle

    manifest = load_bundle(SHIPPED_BUNDLE).manifest
    cost = bench.recognizer_cost(manifest, CORE)
    assert cost["instructions_per_decision"] > 0 and cost["text"] > 0
