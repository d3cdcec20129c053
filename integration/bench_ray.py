"""Serial vs Ray on this machine, Ray's overhead per task, and the full benchmark projected on N machines.

Writes ``<out-dir>/ray_sweep.csv`` (one row per number) and ``<out-dir>/ray_sweep.md`` (the tables and the
command); ``integration/benchmark.py`` puts the markdown into ``docs/RESULTS.md`` ("Scale-out (Ray)").

* **Ray's fixed costs**: starting a local cluster (``ray.init``), ``ray.put`` of the shared object (model +
  calibration batches; once per sweep), and the overhead per task: wall time of ``--noop`` no-op tasks
  through the executor divided by their number (median of ``--reps``), serial executor beside it.
* **A real sweep**: the sensitivity table of ``--model`` on ``--calib`` calibration images (``anchors=[4]``,
  as the benchmark's Greedy-MP), serial (``--threads`` torch threads, default 1) and on Ray (``--workers``
  workers of one thread), medians of ``--reps``; at one thread each the two tables must be bit-identical. Then ``--configs`` uniform configs
  of the benchmark (``run_quantize`` on ``--cfg-eval`` images) serial and on Ray, with the per-task times.
* **Projected** (not measured): the full ``integration/benchmark.py`` run on N machines, from the per-task
  wall times of the last full run (``--results``, its ``results.csv`` and ``results_meta.json``). The FP
  evaluation and the ONNX/speed section stay serial (speed needs a quiet machine); the sensitivity is split
  evenly; config and Greedy-MP tasks are scheduled longest first (LPT) on N slots, each task plus the
  measured Ray overhead per task, plus one ``ray.put``. Also for the whole 10,000-image test split, each
  task's evaluation time scaled by the image count (as the benchmark's own projection).

Usage:
    .venv/bin/python integration/bench_ray.py                    # writes docs/measurements/ray_sweep.*
    .venv/bin/python integration/bench_ray.py --calib 4 --reps 1 --configs 2 --out-dir /tmp/ray
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
import csv
import datetime as dt
import heapq
import json
import os
from pathlib import Path
import pickle
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("TIMM_FUSED_ATTN", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vitq_plugins.core.errors import VitqError  # noqa: E402

FIELDS = ("section", "name", "value", "unit", "n", "detail")
MACHINES = (1, 2, 4, 8, 16)
FULL_SPLIT = 10_000


def _noop(_shared: Any, item: int) -> int:
    return item


def _median_time(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def lpt_makespan(tasks: Sequence[float], slots: int) -> float:
    """Longest-processing-time-first schedule of ``tasks`` (seconds) on ``slots``: the finishing time."""
    loads = [0.0] * max(slots, 1)
    heapq.heapify(loads)
    for t in sorted(tasks, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + t)
    return max(loads)


def project(
    results_csv: Path, meta_json: Path, overhead_s: float, put_s: float, machines: Sequence[int]
) -> list[dict[str, Any]]:
    """Projected wall time of the full benchmark on each N of ``machines`` (see the module docstring)."""
    rows = list(csv.DictReader(results_csv.open(newline="")))
    meta = json.loads(meta_json.read_text())
    timings = meta["timings_s"]
    n_eval = int(meta.get("n_eval") or 0)

    def num(r: dict[str, str], k: str) -> float:
        return float(r[k]) if r.get(k) else 0.0

    tasks = [r for r in rows if r["section"] in ("accuracy", "mixed") and r["name"] != "FP"]
    sens = min((num(r, "search_s") for r in tasks if r["section"] == "mixed"), default=0.0)
    out = []
    for label, scale in (("as measured", 1.0), ("full split", FULL_SPLIT / n_eval if n_eval else 1.0)):
        times = [num(r, "wall_s") + num(r, "eval_s") * (scale - 1.0) for r in tasks]
        fp = float(timings["fp"]) * (1.0 if scale == 1.0 else scale)
        serial_rest = fp + float(timings["onnx+speed"])
        for n in machines:
            ray = n > 1
            over = overhead_s if ray else 0.0
            total = (
                serial_rest + sens / n + lpt_makespan([t + over for t in times], n) + (put_s if ray else 0.0)
            )
            out.append(
                {
                    "images": n_eval if scale == 1.0 else FULL_SPLIT,
                    "split": label,
                    "machines": n,
                    "projected_s": total,
                    "tasks": len(times),
                    "serial_measured_s": float(meta["wall_s"]) if scale == 1.0 else None,
                }
            )
    return out


def _git(*cmd: str) -> str:
    try:
        return subprocess.run(
            ["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="vit_tiny_cifar10")
    ap.add_argument("--data", default="cifar10_bundled")
    ap.add_argument("--calib", type=int, default=8, metavar="N", help="sensitivity images (default 8)")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers of one thread (default 2)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the serial runs (default 1, as each Ray worker: then the tables must be "
        "bit-identical; with more, float reductions may differ in the last bits)",
    )
    ap.add_argument("--reps", type=int, default=3, help="repetitions; medians are quoted (default 3)")
    ap.add_argument(
        "--noop", type=int, default=50, metavar="K", help="no-op tasks per repetition (default 50)"
    )
    ap.add_argument(
        "--configs", type=int, default=4, metavar="K", help="benchmark configs to sweep (default 4)"
    )
    ap.add_argument("--cfg-eval", type=int, default=100, metavar="N", help="their evaluation images")
    ap.add_argument("--cfg-calib", type=int, default=32, metavar="N", help="their calibration images")
    ap.add_argument(
        "--results",
        type=Path,
        default=ROOT / "docs" / "measurements",
        help="the full benchmark's CSV and meta",
    )
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "measurements")
    return ap


def _check(args: argparse.Namespace) -> None:
    for flag in ("calib", "workers", "threads", "reps", "noop", "configs", "cfg_eval", "cfg_calib"):
        if getattr(args, flag) < 1:
            raise VitqError(
                f"--{flag.replace('_', '-')} {getattr(args, flag)} is invalid: expected 1 or more"
            )
    for name in ("results.csv", "results_meta.json"):
        if not (args.results / name).is_file():
            raise VitqError(
                f"--results {str(args.results)!r} has no {name}: run integration/benchmark.py first"
            )


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every measurement as CSV rows."""
    from vitq_plugins.executors import get_executor
    from vitq_plugins.executors import import_ray
    from vitq_plugins.models.resolve import resolve_model
    from vitq_plugins.pipeline import fp_evaluation
    from vitq_plugins.pipeline import quantize_sweep
    from vitq_plugins.search import sensitivity_table

    rows: list[dict[str, Any]] = []

    def add(section: str, name: str, value: float, unit: str, n: int = 1, detail: str = "") -> None:
        rows.append(
            {"section": section, "name": name, "value": value, "unit": unit, "n": n, "detail": detail}
        )
        print(f"{section:10} {name:44} {value:10.4g} {unit:8} n={n} {detail}", file=sys.stderr)

    ray = import_ray()
    torch.set_num_threads(args.threads)
    serial = get_executor("serial")
    t0 = time.perf_counter()
    remote = get_executor("ray", num_workers=args.workers, threads=1)
    add("ray", "ray.init (local cluster start)", time.perf_counter() - t0, "s", 1, f"{args.workers} CPUs")
    try:
        fp_model, name = resolve_model(args.model)
        from vitq_plugins.data.loader import make_loader
        from vitq_plugins.data.resolve import resolve_dataset
        from vitq_plugins.data.transforms import transform_for_model

        ds, _ = resolve_dataset(args.data, "calib", transform=transform_for_model(fp_model))
        batches = list(make_loader(ds, args.calib, args.calib, 0, what="--calib").images())
        shared = (fp_model, batches)
        size_mb = len(pickle.dumps(shared)) / 1e6
        put_s, _ = _median_time(lambda: ray.put(shared), args.reps)
        add("ray", "ray.put of model + batches (once per sweep)", put_s, "s", args.reps, f"{size_mb:.1f} MB")
        warm, _ = _median_time(
            lambda: remote.map(_noop, None, list(range(2 * args.workers))).unwrap("warm"), 1
        )
        add(
            "ray",
            "worker warm-up (first tasks: process start, imports)",
            warm,
            "s",
            1,
            f"{2 * args.workers} tasks",
        )
        for label, ex in (("serial", serial), ("ray", remote)):
            per, _ = _median_time(
                lambda ex=ex: ex.map(_noop, None, list(range(args.noop))).unwrap("noop"), args.reps
            )
            add(
                "overhead",
                f"no-op task, {label} executor",
                per / args.noop,
                "s/task",
                args.reps,
                f"{args.noop} tasks",
            )
        overhead = next(r["value"] for r in rows if r["name"] == "no-op task, ray executor")

        def sens(ex: Any) -> Any:
            return sensitivity_table(
                fp_model, "minmax", data=args.data, n_calib=args.calib, batch_size=args.calib,
                anchors=[4], use_cache=False, executor=ex,
            )  # fmt: skip

        s_t, s_tab = _median_time(lambda: sens(serial), args.reps)
        r_t, r_tab = _median_time(lambda: sens(remote), args.reps)
        pairs = [(s_tab.loss(m, k), r_tab.loss(m, k)) for m in ("kl", "agreement", "mse") for k in "wa"]
        same = all(np.array_equal(a, b) for a, b in pairs)
        rel = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-30))) for a, b in pairs)
        detail = f"{len(s_tab.layers)} layers, {args.calib} images, anchors 4"
        add("sweep", f"sensitivity serial ({args.threads} threads)", s_t, "s", args.reps, detail)
        add("sweep", f"sensitivity ray ({args.workers} workers x 1 thread)", r_t, "s", args.reps, detail)
        add("sweep", "sensitivity speed-up serial/ray", s_t / r_t, "x", args.reps, "")
        add("sweep", "sensitivity tables identical", float(same), "bool", 1, "every metric, w and a")
        add("sweep", "sensitivity max relative difference", rel, "", 1, "0 when identical")
        if not same and args.threads == 1:  # equal threads per task: the numbers must be the same bits
            raise SystemExit(
                f"the Ray sensitivity table differs from the serial one (max relative {rel:.3g})"
            )

        settings = [("minmax", 8, 8, 8), ("fqvit", 8, 8, 4), ("minmax", 4, 8, 8), ("fqvit", 6, 6, 6)]
        jobs = [
            {"recipe": r, "backend": b, "w_bits": w, "a_bits": a, "attn_bits": at}
            for r, w, a, at in settings
            for b in ("brevitas", "fx")
        ][: args.configs]
        fp_eval = fp_evaluation(fp_model, args.data, args.cfg_eval, 0)
        common = {"data": args.data, "n_calib": args.cfg_calib, "n_eval": args.cfg_eval, "seed": 0}
        walls: dict[str, float] = {}
        for label, ex in (("serial", serial), ("ray", remote)):
            t0 = time.perf_counter()
            out = quantize_sweep(fp_model, jobs, executor=ex, name=name, fp_eval=fp_eval, **common)
            walls[label] = time.perf_counter() - t0
            res = out.unwrap("configs")
            task = statistics.median(float(r["task_s"]) for r in res)
            detail = f"{len(jobs)} configs, {args.cfg_eval} eval / {args.cfg_calib} calib images"
            add("configs", f"config sweep {label} (wall)", walls[label], "s", 1, detail)
            add("configs", f"config task {label} (median)", task, "s", len(res), detail)
            if label == "serial":
                top1 = [r["q_top1"] for r in res]
            elif [r["q_top1"] for r in res] != top1:
                raise SystemExit("the Ray config sweep's top-1 differs from the serial one")
        add("configs", "config sweep speed-up serial/ray", walls["serial"] / walls["ray"], "x", 1, "")
    finally:
        remote.close()
    for p in project(
        args.results / "results.csv", args.results / "results_meta.json", overhead, put_s, MACHINES
    ):
        add(
            "projected",
            f"full benchmark, {p['images']} images, {p['machines']} machine(s)",
            p["projected_s"],
            "s",
            p["tasks"],
            f"{p['split']}; serial run measured {p['serial_measured_s']:.0f} s"
            if p["serial_measured_s"]
            else p["split"],
        )
    return rows


def render(rows: Sequence[dict[str, Any]], command: str, when: str, commit: str) -> str:
    """``ray_sweep.md``: what was run, then one table per section."""
    cpu = os.cpu_count()
    lines = [
        "# Ray sweep measurements",
        "",
        f"Command: `{command}` at commit `{commit or 'unknown'}`, {when}, on this machine ({cpu} CPUs, "
        "shared with other jobs while it ran: the numbers are noisy). Medians of the repetitions (`n`).",
        "",
    ]
    titles = {
        "ray": "Ray's fixed costs",
        "overhead": "Overhead per task (no-op tasks)",
        "sweep": "A real sweep: sensitivity table, serial vs Ray",
        "configs": "Benchmark configs, serial vs Ray",
        "projected": "Projected (not measured): the full benchmark on N machines",
    }
    for section, title in titles.items():
        part = [r for r in rows if r["section"] == section]
        if not part:
            continue
        lines += [f"## {title}", ""]
        if section == "projected":
            lines += [
                "Computed from the per-task wall times of the last full `integration/benchmark.py` run "
                "(`results.csv`), LPT-scheduled on N machines like this one, each task plus the measured Ray "
                "overhead per task, plus one `ray.put`; the FP evaluation and the ONNX/speed section stay serial, "
                "the sensitivity splits evenly. The full split scales each evaluation to 10,000 images.",
                "",
            ]
        lines += ["| Measurement | Value | Unit | n | Detail |", "|---|---:|---|---:|---|"]
        for r in part:
            v = r["value"]
            shown = f"{v:.4g}" if r["unit"] not in ("s",) or v < 100 else f"{v:.0f} ({v / 60:.1f} min)"
            lines.append(f"| {r['name']} | {shown} | {r['unit']} | {r['n']} | {r['detail']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        _check(args)
        rows = measure(args)
    except VitqError as exc:
        print(f"bench_ray.py: error: {exc}", file=sys.stderr)
        return 2
    command = "python integration/bench_ray.py " + " ".join(shlex.quote(a) for a in argv)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = render(rows, command.strip(), when, _git("rev-parse", "--short", "HEAD"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.out_dir / "ray_sweep.csv", args.out_dir / "ray_sweep.md"
    tmp_csv, tmp_md = csv_path.with_suffix(".csv.tmp"), md_path.with_suffix(".md.tmp")
    with tmp_csv.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(FIELDS))
        w.writeheader()
        w.writerows({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in FIELDS} for r in rows)
    tmp_md.write_text(text)
    tmp_csv.replace(csv_path)
    tmp_md.replace(md_path)
    print(text)
    print(f"wrote {csv_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
