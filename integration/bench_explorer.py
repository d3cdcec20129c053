"""Benchmark: what the explorer's user waits for, through the app's own service functions.

Times, on the app's defaults (``vit_tiny_cifar10``, all 2,000 bundled test images, 512 calibration images,
128 sensitivity images, ``fqvit`` W8A8 with 4-bit attention on Brevitas; override with the
``VITQ_EXPLORER_*`` variables), every step a first-hour user presses a button for:

* the first page: ``streamlit run`` to the first HTTP 200, and to the settings form drawn in headless
  Chromium (when ``/usr/bin/chromium`` is installed; else the AppTest first run);
* loading the FP model (the ``st.cache_resource`` step) and the FP evaluation every config is compared with
  (once per model and data, then cached);
* **Calibrate** (LayerNorm input statistics, up to 256 calibration images);
* evaluating one config (calibration + quantized pass, the FP evaluation cached): median of ``--repeats``;
* **Measure sensitivity** (cold disk cache);
* **Run search** (greedy sweep and ILP under the Suggestions page's default budget: mid-range weight size,
  patch embedding and head pinned);
* **Build QCDQ** (quantize, calibrate, evaluate and export the deployable ONNX).

The disk caches are pointed at fresh temporary directories so nothing is reused between runs. Prints a
table and writes it as CSV. It is a wall-clock measurement: the load average at the end is printed with it.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python integration/bench_explorer.py --out docs/measurements/explorer_timing.csv
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _first_page() -> tuple[float, float, str]:
    """(seconds to the first HTTP 200, seconds to the settings form, how the form was seen)."""
    from tests.explorer_app import browser

    env = {"VITQ_CACHE_DIR": tempfile.mkdtemp(prefix="vitq-bench-explorer-")}
    if browser.find_chromium() is None:
        from streamlit.testing.v1 import AppTest

        with browser.served_app(env) as (_, http_s):
            pass
        t = time.perf_counter()
        AppTest.from_file(str(browser.APP), default_timeout=300).run()
        return http_s, time.perf_counter() - t, "AppTest first run (no chromium)"
    with browser.served_app(env) as (url, http_s), browser.chromium() as b:
        t = time.perf_counter()
        b.call("Page.navigate", url=url + "/")
        b.wait_for(
            "[...document.querySelectorAll('button')].some(e => e.innerText.includes('Apply'))", 300, "form"
        )
        return http_s, time.perf_counter() - t, "headless Chromium: navigate to the form drawn"


class _Rows(list[tuple[str, float, str]]):
    """The measured rows; each is also printed (stderr) the moment it is measured, so a long or interrupted
    run still shows what it got."""

    def append(self, row: tuple[str, float, str]) -> None:
        super().append(row)
        print(f"measured: {row[0]}: {row[1]:.1f} s ({row[2]})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path("runs/explorer_timing.csv"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="evaluations to take the median of")
    ap.add_argument("--no-first-page", action="store_true", help="skip the served-app timing")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ["VITQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitq-bench-explorer-")
    from explorer_app import evaluations
    from explorer_app import ln_stats
    from explorer_app import services
    from explorer_app.state import Settings
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.data.loader import make_loader

    settings = Settings.from_env()
    rows = _Rows()

    if not args.no_first_page:
        http_s, form_s, how = _first_page()
        rows.append(("first page: server start to HTTP 200", http_s, "streamlit run, headless"))
        rows.append(("first page: settings form drawn", form_s, how))

    t = time.perf_counter()
    fp = services.load_fp_model(settings.model)
    rows.append(("load FP model", time.perf_counter() - t, settings.model))
    t = time.perf_counter()
    fp_eval = evaluations.fp_evaluation(settings, fp)
    rows.append(("FP evaluation (once, cached)", time.perf_counter() - t, f"{fp_eval.n} images"))

    calib, _ = services.load_dataset(settings.data, "calib", settings.model)
    n = min(settings.n_calib, len(calib), 256)  # what the Calibrate button uses
    t = time.perf_counter()
    loader = make_loader(calib, settings.batch_size, n, settings.seed, what="calibration images")
    stats = ln_stats.layernorm_stats(fp, list(loader.images()), bits=settings.a_bits)
    rows.append(
        ("Calibrate (LayerNorm statistics)", time.perf_counter() - t, f"{len(stats)} LayerNorms, {n} images")
    )

    label = f"{settings.recipe} W{settings.w_bits}A{settings.a_bits} attn{settings.attn_bits}"
    cfg = QuantConfig(settings.recipe, settings.w_bits, settings.a_bits, settings.attn_bits)
    times, top1 = [], 0.0
    for _ in range(args.repeats):
        os.environ["VITQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitq-bench-explorer-")  # cold result cache
        t = time.perf_counter()
        rec, hit = evaluations.evaluate(settings, fp, cfg, {}, label=label, source="bench")
        times.append(time.perf_counter() - t)
        assert not hit, "the result cache must be cold for a timing"
        top1 = float(rec["result"]["q_top1"])
    rows.append(
        (
            f"evaluate one config: {label} (FP cached; median of {args.repeats})",
            statistics.median(times),
            f"top-1 {top1:.4f} (FP {fp_eval.top1:.4f}); {settings.backend}; {fp_eval.n} images; "
            f"{settings.n_calib} calib",
        )
    )

    os.environ["VITQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitq-bench-explorer-")  # cold sensitivity cache
    t = time.perf_counter()
    table = services.sensitivity(settings, fp)
    rows.append(
        (
            "Measure sensitivity (cold cache)",
            time.perf_counter() - t,
            f"{len(table.layers)} layers x 2 knobs x candidates {list(settings.candidates)} on "
            f"{settings.sens_calib} images",
        )
    )

    from vitq_plugins.search import Budget

    pins = [ly.fqn for ly in fp.layers if ly.fqn.startswith("patch_embed") or ly.fqn == "head"]
    space = table.space(
        "kl", tie="none", pins=pins, base_a_bits=settings.a_bits, attn_bits=settings.attn_bits
    )
    lo, hi = space.smallest("mb"), space.costs(space.all_high())["mb"]
    budget = Budget("mb", float(lo + 0.5 * (hi - lo)))  # the page's default: mid-range
    t = time.perf_counter()
    services.search(
        table,
        budget,
        method="ilp",
        metric="kl",
        tie="none",
        pins=pins,
        base_a_bits=settings.a_bits,
        attn_bits=settings.attn_bits,
    )
    rows.append(("Run search (greedy sweep + ILP)", time.perf_counter() - t, f"budget {budget.describe()}"))

    t = time.perf_counter()
    data, result = evaluations.export_model(settings, fp, cfg, "qcdq")
    rows.append(
        (
            "Build QCDQ (quantize, calibrate, evaluate, export)",
            time.perf_counter() - t,
            f"{len(data) / 1e6:.2f} MB ONNX; top-1 {float(result['q_top1']):.4f}",
        )
    )

    load = os.getloadavg()
    print("| step | median s | note |\n|---|---|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.1f} | {note} |")
    print(
        f"\nthreads={args.threads}, repeats={args.repeats}, load average at end {load[0]:.1f}/{load[1]:.1f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "median_s", "note", "threads", "repeats"])
        for name, sec, note in rows:
            w.writerow([name, f"{sec:.2f}", note, args.threads, args.repeats])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
