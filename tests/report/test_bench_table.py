"""The README tables come from bench JSON: every section renders, missing ones are left out."""

from kws.report.bench_table import markdown

CHIP = {"core": "cortex-m4f", "clock_hz": 64e6, "per_second": {"features": 1.3e6, "model": 2.2e6,
        "recognizer": 510}, "per_second_total": 3.5e6, "energy": {"load_fraction": 0.055,
        "mj_per_second_of_audio": 0.55}, "kws_flash_bytes": 43000, "kws_ram_bytes": 6800}


def test_all_sections():
    bench = {
        "accuracy": {"keras": {"accuracy": 0.85, "clips": 247},
                     "tflm": {"accuracy": 0.858, "clips": 247}, "int8_identical": True},
        "cross_validation": {"folds": [{"int8_tflm_accuracy": 0.77}, {"int8_tflm_accuracy": 0.79}],
                             "mean_int8_tflm_accuracy": 0.78, "mean_float_accuracy": 0.785,
                             "mean_drop_points": 0.5},
        "streaming": {"resets": 1, "recognizer": {"threshold": 0.7},
                      "clean": {"frr": 0.9, "fa_per_hour": 67.4},
                      "impaired": {"frr": 0.92, "fa_per_hour": 60.0, "impairment": "drops",
                                   "false_accept_causes": {"keyword": 3, "unknown_word": 50,
                                                           "background": 7}}},
        "chip": {"nano33": CHIP, "nano_rp2040": {"core": "cortex-m0plus", "skipped": "no QEMU"}},
        "training": {"seconds": 290.0, "tflite_bytes": 38448, "test_float": 0.85,
                     "test_int8_tflm": 0.858},
    }
    text = markdown(bench)
    assert "| int8, tflite-micro interpreter | 85.8% | 247 |" in text
    assert "folds 77.0, 79.0" in text
    assert "| as recorded (K=1, threshold 0.7) | 90.0% | 67.4 | – |" in text  # older bench JSON
    assert "| drops (K=1, threshold 0.7) | 92.0% | 60.0 | 50 / 3 / 7 |" in text
    assert "| nano33 (cortex-m4f, 64 MHz) | 1.30 M | 2.20 M | 0.5 k | 3.50 M | 5.5% | 0.55 mJ" in text
    assert "no QEMU" in text and "Training: 290 s" in text


def test_empty_bench_gives_no_tables():
    assert markdown({}).strip() == ""


def test_cross_validation_with_two_seeds_lists_folds_per_seed():
    cv = {"folds": [{"int8_tflm_accuracy": 0.77, "seed": 0}, {"int8_tflm_accuracy": 0.79, "seed": 0},
                    {"int8_tflm_accuracy": 0.75, "seed": 1}, {"int8_tflm_accuracy": 0.80, "seed": 1}],
          "seeds": [0, 1], "mean_int8_tflm_accuracy": 0.7775, "mean_float_accuracy": 0.78,
          "mean_drop_points": 0.2}
    assert "(folds seed 0: 77.0, 79.0; seed 1: 75.0, 80.0)" in markdown({"cross_validation": cv})


def test_per_core_table_names_the_tflm_ratio_on_the_m4_only():
    ref = {"instructions_per_step": 30000.0, "instructions_per_mac": 1.45, "macs_per_step": 20736,
           "firmware_per_second_20ms": 2_100_000, "tflm_cmsis_nn_m4_step": 177000,
           "tflm_over_native": 5.9}
    core = {"dsp": True, "features": {"instructions_per_frame": 11000.0},
            "model": {"instructions_per_step": 62700.0, "instructions_per_mac": 1.555},
            "firmware_per_second_total": 3_700_000, "reference_gru64": ref}
    m0 = {**core, "dsp": False}
    text = markdown({"device": {"cortex-m4f": core, "cortex-m0plus": m0, "model": "x.tflite"}})
    assert ("| cortex-m4f | 11.0 k | 62.7 k (1.55) | same | – | 3.70 M | 30.0 k (1.45) | 2.10 M "
            "| 5.9x |" in text)
    assert "| cortex-m0plus (no DSP) | 11.0 k |" in text and text.count("5.9x") == 1
