"""The README's results tables, generated from `kws bench --json` output (never typed by hand):
`kws bench --table build/bench.json`."""

from __future__ import annotations


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _m(x) -> str:
    return "–" if x is None else f"{x / 1e6:.2f} M"


def _kb(x) -> str:
    return "–" if x is None else f"{x / 1024:.1f} KB"


def markdown(bench: dict) -> str:
    lines: list[str] = []
    acc = bench.get("accuracy")
    if acc:
        lines += ["| backend (test speakers) | accuracy | clips |", "|---|---|---|"]
        names = {"keras": "float (Keras)", "tflm": "int8, tflite-micro interpreter",
                 "native": "int8, native C (host build)", "qemu": "int8, firmware in QEMU (M4)"}
        for key, name in names.items():
            if key in acc:
                lines.append(f"| {name} | {_pct(acc[key]['accuracy'])} | {acc[key]['clips']} |")
        lines.append(f"| int8 logits of tflm / native / qemu byte-identical | "
                     f"{'yes' if acc.get('int8_identical') else 'NO'} | |")
        lines.append("")
    cv = bench.get("cross_validation")
    if cv:
        by_seed: dict = {}
        for f in cv["folds"]:
            by_seed.setdefault(f.get("seed"), []).append(f"{100 * f['int8_tflm_accuracy']:.1f}")
        folds = "; ".join((f"seed {s}: " if len(by_seed) > 1 else "") + ", ".join(accs)
                          for s, accs in by_seed.items())
        lines += [f"5-fold speaker CV, int8 tflite-micro: {_pct(cv['mean_int8_tflm_accuracy'])} "
                  f"(folds {folds}); float {_pct(cv['mean_float_accuracy'])}, drop "
                  f"{cv['mean_drop_points']:.2f} points", ""]
    st = bench.get("streaming")
    if st:
        lines += ["| streams (test speakers, 20/10/5 dB + keyword-free audio) | FRR | FA per hour "
                  "| false accepts over an unknown word / a keyword / background |",
                  "|---|---|---|---|"]
        for name in ("clean", "impaired"):
            if name in st:
                label = "as recorded" if name == "clean" else st[name].get("impairment", name)
                causes = st[name].get("false_accept_causes")
                heard = (f"{causes['unknown_word']} / {causes['keyword']} / "
                         f"{causes['background']}" if causes else "–")
                lines.append(f"| {label} (K={st['resets']}, threshold "
                             f"{st['recognizer']['threshold']}) | {_pct(st[name]['frr'])} | "
                             f"{st[name]['fa_per_hour']:.1f} | {heard} |")
        lines.append("")
    chip = bench.get("chip")
    if chip:
        lines += ["| board (core) | features / s | model / s | recognizer / s | total / s "
                  "| load | energy / s of audio | firmware measured / s | stack | kws flash / RAM "
                  "| QEMU speed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for board, c in chip.items():
            if "skipped" in c:
                lines.append(f"| {board} ({c['core']}) | {c['skipped']} |||||||||| ")
                continue
            p = c["per_second"]
            e = c["energy"]
            fw = c.get("firmware", {})
            lines.append(
                f"| {board} ({c['core']}, {c['clock_hz'] / 1e6:g} MHz) | {_m(p['features'])} | "
                f"{_m(p['model'])} | {p['recognizer'] / 1e3:.1f} k | {_m(c['per_second_total'])} | "
                f"{_pct(e['load_fraction'])} | {e['mj_per_second_of_audio']:.2f} mJ | "
                f"{_m(fw.get('instructions_per_second'))} | "
                f"{str(fw['stack_bytes']) + ' B' if fw else '–'} | "
                f"{_kb(c.get('kws_flash_bytes'))} / {_kb(c.get('kws_ram_bytes'))} | "
                f"{str(fw['emulation_x_real_time']) + 'x real time' if fw else '–'} |")
        lines += ["", "Instructions are QEMU guest instructions (-icount, deterministic); energy "
                  "assumes 1 cycle per instruction and the board file's active µA/MHz and "
                  "supply voltage; real boards use the QEMU machine of their core."]
    lines += _core_lines(bench.get("device") or {})
    tr = bench.get("training")
    if tr:
        lines += ["", f"Training: {tr['seconds']:.0f} s; model.tflite {tr['tflite_bytes']:,} B; "
                  f"test float {_pct(tr['test_float'])}, int8 {_pct(tr['test_int8_tflm'])}."]
    return "\n".join(lines) + "\n"


def _k(x) -> str:
    return "–" if x is None else f"{x / 1e3:.1f} k"


def _per_mac(m: dict | None) -> str:
    return f"{_k(m['instructions_per_step'])} ({m['instructions_per_mac']:.2f})" if m else "–"


def _core_lines(device: dict) -> list[str]:
    """Per emulated core: front end, model (default bundle and the reference GRU-64), firmware
    per second of audio, and TFLM + CMSIS-NN's GRU-64 step over ours."""
    cores = {k: v for k, v in device.items() if isinstance(v, dict) and "features" in v}
    if not cores:
        return []
    lines = ["", "| core | features / frame | model / step (per MAC) | portable C model / step "
             "(per MAC) | model text / bss | firmware / s of audio | GRU-64 step (per MAC) "
             "| GRU-64 / 20 ms firmware / s | TFLM+CMSIS-NN GRU-64 step / ours |",
             "|---|---|---|---|---|---|---|---|---|"]
    for core, c in cores.items():
        m, port, ref = c.get("model"), c.get("model_portable"), c.get("reference_gru64")
        gru64 = (f"{_k(ref['instructions_per_step'])} ({ref['instructions_per_mac']:.2f})"
                 if ref else "–")
        ratio = f"{ref['tflm_over_native']:.1f}x" if ref and core == "cortex-m4f" else "–"
        sizes = f"{m['text']:,} / {m['bss']:,} B" if m and "text" in m else "–"
        lines.append(f"| {core}{'' if c.get('dsp', True) else ' (no DSP)'} | "
                     f"{_k(c['features']['instructions_per_frame'])} | {_per_mac(m)} | "
                     f"{_per_mac(port) if port else 'same'} | {sizes} | "
                     f"{_m(c.get('firmware_per_second_total'))} | {gru64} | "
                     f"{_m(ref['firmware_per_second_20ms']) if ref else '–'} | {ratio} |")
    lines += ["", "TFLM + CMSIS-NN: 177k instructions per GRU-64 step, measured once on the "
              "emulated M4 (DESIGN.md); the ratio is given for that core only."]
    return lines
