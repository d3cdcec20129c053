"""The benchmark's steps (:class:`Bench`): FP, every configuration on every wing, baselines, speed, cost."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
import datetime as dt
import os
from pathlib import Path
import platform
import shlex
import sys
import tempfile
import time
from typing import Any

import torch

from integration.benchlib.plan import COMPILE_BATCHES
from integration.benchlib.plan import COMPILE_MODELS
from integration.benchlib.plan import COMPILE_RECIPES
from integration.benchlib.plan import ORT_FP32
from integration.benchlib.plan import QCDQ_ENGINE
from integration.benchlib.plan import QCDQ_EXTRA_CFGS
from integration.benchlib.plan import SCALE_IMAGES
from integration.benchlib.plan import SCALE_MODEL
from integration.benchlib.plan import SCALE_SETTING
from integration.benchlib.plan import SPEED_BATCHES
from integration.benchlib.plan import SPEED_CFG
from integration.benchlib.plan import Plan
from integration.benchlib.runtime import AsModule
from integration.benchlib.runtime import CalibReader
from integration.benchlib.runtime import cpu_name
from integration.benchlib.runtime import eval_row
from integration.benchlib.runtime import export_fp_onnx
from integration.benchlib.runtime import median_side_by_side
from integration.benchlib.runtime import onnx_weight_mb
from integration.benchlib.runtime import ort_runner
from integration.benchlib.runtime import ort_session
from integration.benchlib.runtime import package_version
from integration.benchlib.runtime import result_row
from vitq_plugins.core.errors import VitqError
from vitq_plugins.executors import Executor
from vitq_plugins.provenance import git_commit

ROOT = Path(__file__).resolve().parents[2]

# -------------------------------------------------------------------------------------------- the steps


class Bench:
    """One benchmark run: shared FP results, then the sections, each appending CSV rows."""

    def __init__(self, args: argparse.Namespace, plan: Plan, executor: Executor | None = None) -> None:
        from vitq_plugins.core.manager import get_host
        from vitq_plugins.data.loader import make_loader
        from vitq_plugins.data.resolve import resolve_dataset
        from vitq_plugins.data.transforms import transform_for_model
        from vitq_plugins.executors import get_executor
        from vitq_plugins.models.resolve import resolve_model

        self.args = args
        self.plan = plan
        #: where the configs, the sensitivity and the Greedy-MP points run (the speed table stays here)
        self.executor = executor if executor is not None else get_executor("serial")
        self.progress = not args.no_progress
        self.host = get_host()
        self.data: Path | str = args.data
        self.fp_model, _ = resolve_model(args.model, host=self.host)
        self.fp_model.eval()
        tf = transform_for_model(self.fp_model)
        self.calib_ds, self.calib_name = resolve_dataset(self.data, "calib", transform=tf, host=self.host)
        self.eval_ds, self.eval_name = resolve_dataset(self.data, "eval", transform=tf, host=self.host)
        bs = args.batch_size
        self.eval_loader = make_loader(self.eval_ds, bs, plan.n_eval, args.seed, what="--eval")
        self.calib_loader = make_loader(self.calib_ds, bs, plan.n_calib, args.seed, what="--calib")
        self.ort_calib_loader = make_loader(
            self.calib_ds, 32, plan.n_ort_calib, args.seed, what="--ort-calib"
        )
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="vitq_bench_"))

    def log(self, msg: str) -> None:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)

    # --- FP
    def fp(self) -> None:
        from vitq_plugins.evaluation.evaluate import evaluate
        from vitq_plugins.evaluation.size import weight_size_mb

        t0 = time.perf_counter()
        self.fp_eval = evaluate(
            self.fp_model, self.eval_loader, keep_logits=True, progress=self.progress, desc="eval fp"
        )
        # the FP forward over the calibration images (data loading included, as in calibration)
        self.fp_calib_s = evaluate(self.fp_model, self.calib_loader, progress=False).seconds
        self.fp_ort_calib_s = evaluate(self.fp_model, self.ort_calib_loader, progress=False).seconds
        self.fp_size = weight_size_mb(self.fp_model)
        self.rows.append(
            result_row(
                "accuracy",
                "FP",
                recipe="fp32",
                backend="torch",
                w_bits=32,
                a_bits=32,
                attn_bits=32,
                top1=self.fp_eval.top1,
                top1_drop=0.0,
                agreement=1.0,
                kl=0.0,
                size_mb=self.fp_size,
                eval_s=self.fp_eval.seconds,
                calib_s=self.fp_calib_s,
                calib_x_fp=1.0,
                wall_s=time.perf_counter() - t0,
                n_eval=self.fp_eval.n,
                n_calib=self.calib_loader.num_images,
            )
        )
        self.timings["fp"] = time.perf_counter() - t0
        self.log(f"FP top-1 {self.fp_eval.top1:.4f} on {self.fp_eval.n} images ({self.timings['fp']:.1f} s)")

    # --- uniform recipes on both backends
    def configs(self) -> None:
        """Every uniform config as one sweep on the executor (model and FP logits shipped once)."""
        from vitq_plugins.pipeline import quantize_sweep

        plan = self.plan
        todo = [(r, b, s) for s in plan.settings for r in plan.recipes for b in plan.backends]
        names = [f"{recipe} W{w}A{a} attn{attn} [{backend}]" for recipe, backend, (w, a, attn) in todo]
        t_all = time.perf_counter()
        outcome = quantize_sweep(
            self.fp_model,
            [
                {"recipe": recipe, "backend": backend, "w_bits": w, "a_bits": a, "attn_bits": attn}
                for recipe, backend, (w, a, attn) in todo
            ],
            executor=self.executor,
            labels=names,
            name=self.args.model,
            fp_eval=self.fp_eval,
            host=self.host,
            progress=self.progress,
            data=self.data,
            n_calib=plan.n_calib,
            n_eval=plan.n_eval,
            seed=self.args.seed,
            batch_size=self.args.batch_size,
        )
        failed = {f.index: f for f in outcome.failures}
        for i, ((recipe, backend, bits), name) in enumerate(zip(todo, names, strict=True)):
            res = outcome.results[i]
            if res is not None:
                self.rows.append(eval_row(name, res, self.fp_calib_s, float(res["task_s"])))
            else:  # a combination the backend rejects (VitqError), or a library failure: a row with the reason
                f = failed[i]
                status = "unsupported" if isinstance(f.exception, VitqError) else "error"
                reason = str(f.exception) if status == "unsupported" else f.error
                self.rows.append(
                    self._failed(name, recipe, backend, bits, status, reason, time.perf_counter())
                )
            r = self.rows[-1]
            detail = (
                f"top-1 {r['top1']:.4f} agree {r['agreement']:.4f} calib {r['calib_s']:.1f} s eval {r['eval_s']:.1f} s"
                if r["status"] == "ok"
                else f"{r['status']}: {str(r['reason'])[:120]}"
            )
            self.log(
                f"  {name:34} {detail} (wall {r['wall_s']:.1f} s, ~{self.projected(r):.0f} s on the full split)"
            )
        self.timings["configs"] = time.perf_counter() - t_all

    def projected(self, row: dict[str, Any]) -> float:
        """This row's wall time with the evaluation scaled to the whole evaluation split."""
        if row["eval_s"] is None or not row["n_eval"]:
            return float(row["wall_s"] or 0.0)
        scale = len(self.eval_ds) / row["n_eval"]
        return float(row["wall_s"]) + float(row["eval_s"]) * (scale - 1.0)

    def _failed(
        self,
        name: str,
        recipe: str,
        backend: str,
        bits: tuple[int, int, int],
        status: str,
        reason: str,
        t0: float,
    ) -> dict[str, Any]:
        w, a, attn = bits
        return result_row(
            "accuracy",
            name,
            recipe=recipe,
            backend=backend,
            w_bits=w,
            a_bits=a,
            attn_bits=attn,
            status=status,
            reason=" ".join(reason.split()),
            wall_s=time.perf_counter() - t0,
        )

    # --- greedy mixed precision
    def mixed(self) -> None:
        from vitq_plugins.pipeline import quantize_sweep
        from vitq_plugins.search import Budget
        from vitq_plugins.search import run_search
        from vitq_plugins.search import sensitivity_table
        from vitq_plugins.search import to_quant_config

        if not self.plan.mp_bits:
            return
        recipe, backend = self.args.mp_recipe, "brevitas"
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        try:
            table = sensitivity_table(
                self.args.model,
                recipe,
                data=self.data,
                n_calib=self.plan.n_mp_calib,
                seed=self.args.seed,
                anchors=[4],
                use_cache=False,
                progress=False,
                executor=self.executor,
            )
        except VitqError as exc:
            for bits in self.plan.mp_bits:
                name = f"Greedy-MP {recipe} avg {bits:g} bits [{backend}]"
                self.rows.append(self._failed(name, recipe, backend, (0, 0, 0), "unsupported", str(exc), t0))
                self.rows[-1].update(section="mixed", w_bits=None, a_bits=None, attn_bits=None)
            return
        t_sens = time.perf_counter() - t0
        points: list[tuple[str, Any, Any, float]] = []  # (name, search result, config, search seconds)
        for bits in self.plan.mp_bits:
            name = f"Greedy-MP {recipe} avg {bits:g} bits [{backend}]"
            t0 = time.perf_counter()
            try:
                found = run_search(table, [Budget("avg_bits", bits)], method="greedy")
            except VitqError as exc:
                self.rows.append(self._failed(name, recipe, backend, (0, 0, 0), "unsupported", str(exc), t0))
                self.rows[-1].update(section="mixed", w_bits=None, a_bits=None, attn_bits=None)
                continue
            cfg = to_quant_config(found.space, found.chosen, recipe)
            points.append((name, found, cfg, time.perf_counter() - t0))
        outcome = quantize_sweep(
            self.fp_model,
            [{"backend": backend, "config": cfg} for _, _, cfg, _ in points],
            executor=self.executor,
            labels=[p[0] for p in points],
            name=self.args.model,
            fp_eval=self.fp_eval,
            host=self.host,
            progress=self.progress,
            data=self.data,
            n_calib=self.plan.n_calib,
            n_eval=self.plan.n_eval,
            seed=self.args.seed,
            batch_size=self.args.batch_size,
        )
        failed = {f.index: f for f in outcome.failures}
        for i, (name, found, cfg, t_search) in enumerate(points):
            res = outcome.results[i]
            if res is None:
                f = failed[i]
                status = "unsupported" if isinstance(f.exception, VitqError) else "error"
                reason = str(f.exception) if status == "unsupported" else f.error
                self.rows.append(
                    self._failed(name, recipe, backend, (0, 0, 0), status, reason, time.perf_counter())
                )
                self.rows[-1].update(section="mixed", w_bits=None, a_bits=None, attn_bits=None)
                continue
            costs = found.space.costs(found.chosen)
            row = eval_row(name, res, self.fp_calib_s, t_search + float(res["task_s"]))
            params = [ly.params for ly in found.space.layers]
            row.update(
                section="mixed",
                w_bits=round(_avg(found.chosen.w_bits, params), 2),
                a_bits=round(_avg(found.chosen.a_bits, params), 2),
                search_s=t_sens + t_search,
                reason=f"avg bits {costs['avg_bits']:.2f} (searched layers; other sites at {cfg.a_bits} bits); "
                f"sensitivity on {self.plan.n_mp_calib} calibration images",
            )
            self.rows.append(row)
            self.log(
                f"  {name:34} top-1 {row['top1']:.4f} search {row['search_s']:.1f} s (wall {row['wall_s']:.1f} s)"
            )
        self.timings["mixed"] = time.perf_counter() - t_all

    # --- ONNX Runtime: baseline, our QCDQ export, speed
    def onnx(self) -> None:
        from onnxruntime.quantization import CalibrationMethod
        from onnxruntime.quantization import QuantFormat
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization import quantize_static

        from vitq_plugins.config import QuantConfig
        from vitq_plugins.evaluation.evaluate import evaluate
        from vitq_plugins.pipeline import load_backend

        threads = self.args.threads
        t_all = time.perf_counter()
        example = next(iter(self.eval_loader))[0]
        fp_path = export_fp_onnx(self.fp_model, self.tmp / "fp32.onnx", example[:1])
        src = fp_path
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = self.tmp / "fp32_pre.onnx"
            quant_pre_process(str(fp_path), str(pre))
            src = pre
        except Exception as exc:  # noqa: BLE001 - pre-processing is optional
            self.notes.append(
                f"quant_pre_process failed ({type(exc).__name__}: {exc}); quantized the raw export"
            )
        int8_path = self.tmp / "int8_quantize_static.onnx"
        t0 = time.perf_counter()
        quantize_static(
            str(src),
            str(int8_path),
            CalibReader("input", self.ort_calib_loader.images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        t_qs = time.perf_counter() - t0
        ort_int8 = ort_session(int8_path, threads)
        res = evaluate(AsModule(ort_runner(ort_int8)), self.eval_loader, self.fp_eval.logits, progress=False)
        self.rows.append(
            result_row(
                "baseline",
                "ORT quantize_static (QDQ, per-channel W8, U8 act, MinMax)",
                recipe="ort_quantize_static",
                backend="onnxruntime",
                w_bits=8,
                a_bits=8,
                attn_bits=8,
                top1=res.top1,
                top1_drop=self.fp_eval.top1 - res.top1,
                agreement=res.agreement,
                kl=res.kl,
                size_mb=onnx_weight_mb(int8_path),
                calib_s=t_qs,
                calib_x_fp=t_qs / self.fp_ort_calib_s,
                eval_s=res.seconds,
                wall_s=time.perf_counter() - t0,
                n_eval=res.n,
                n_calib=self.ort_calib_loader.num_images,
                reason="ORT default QDQ op set (MatMul incl. attention, Gemm, Conv, Add, Softmax, LayerNorm inputs)",
            )
        )
        self.log(
            f"  ORT quantize_static: top-1 {res.top1:.4f} agree {res.agreement:.4f} quantize {t_qs:.1f} s"
        )

        # our configuration: Brevitas QCDQ export in ORT, and torch.ao FX x86 int8
        recipe, w, a, attn = SPEED_CFG
        cfg = QuantConfig(recipe, w, a, attn)
        brev = load_backend("brevitas", self.host)
        fx = load_backend("fx", self.host)
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.seed)
            qb = brev.quantize(self.fp_model, cfg, self.calib_loader.images(), progress=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.seed)
            qfx = fx.quantize(self.fp_model, cfg, self.calib_loader.images(), progress=False)
        qcdq_paths: dict[int, Path] = {}
        for bs in SPEED_BATCHES:
            qcdq_paths[bs] = brev.export(
                qb, "qcdq", self.tmp / f"vitq_qcdq_b{bs}.onnx", example[:1].expand(bs, -1, -1, -1).clone()
            )
        t_ex = time.perf_counter() - t0
        big = max(SPEED_BATCHES)
        self._qcdq_row(
            (recipe, w, a, attn),
            ort_session(qcdq_paths[big], threads, qcdq=True),
            qcdq_paths[big],
            t0,
            f"quantize + two exports took {t_ex:.1f} s",
        )
        if not self.args.quick:
            for extra in QCDQ_EXTRA_CFGS:
                self._qcdq_accuracy(brev, extra, example, threads)

        # speed, side by side, at --speed-threads (the CI check uses 1: a 2-thread ORT pool on a loaded 2-core
        # machine measured anywhere from 1.16x to 3.5x for the same two files, one thread 1.78x to 3.15x)
        if self.args.speed_threads and self.args.speed_threads != threads:
            threads = self.args.speed_threads
            ort_int8 = ort_session(int8_path, threads)
        qcdq = {bs: ort_session(path, threads, qcdq=True) for bs, path in qcdq_paths.items()}
        ort_fp = ort_session(fp_path, threads)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        torch.backends.quantized.engine = "x86"
        for bs in SPEED_BATCHES:
            x = example[:bs].contiguous()
            if x.shape[0] < bs:
                x = example[:1].expand(bs, -1, -1, -1).clone()
            engines: dict[str, Callable[[torch.Tensor], Any]] = {
                "torch fp32": self.fp_model,
                ORT_FP32: ort_runner(ort_fp),
                QCDQ_ENGINE: ort_runner(qcdq[bs]),
                "ORT int8 (quantize_static)": ort_runner(ort_int8),
                "torch.ao x86 int8": qfx,
            }
            med = median_side_by_side(engines, x, self.plan.reps, self.plan.warmup)
            for name, ms in med.items():
                self.rows.append(
                    result_row(
                        "speed",
                        name,
                        recipe="fp32"
                        if "fp32" in name
                        else (recipe if "vitq" in name or "torch.ao" in name else "ort_quantize_static"),
                        batch=bs,
                        median_ms=ms,
                        x_ort_fp32=med[ORT_FP32] / ms,
                        reason=f"median of {self.plan.reps} interleaved runs, {threads} threads",
                    )
                )
            self.log("  speed b" + str(bs) + ": " + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()))
        torch.set_num_threads(torch_threads)
        self.timings["onnx+speed"] = time.perf_counter() - t_all

    # --- output
    def _qcdq_accuracy(
        self, brev: Any, cfg_t: tuple[str, int, int, int], example: torch.Tensor, threads: int
    ) -> None:
        """Quantize ``cfg_t`` with Brevitas, export QCDQ and evaluate the file in ONNX Runtime (a reason row
        when the export fails)."""
        from vitq_plugins.config import QuantConfig

        recipe, w, a, attn = cfg_t
        name = f"vitq {recipe} W{w}A{a} attn{attn} [brevitas] QCDQ export in ORT"
        t0 = time.perf_counter()
        big = max(SPEED_BATCHES)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.args.seed)
                qm = brev.quantize(
                    self.fp_model, QuantConfig(recipe, w, a, attn), self.calib_loader.images(), progress=False
                )
            path = brev.export(
                qm, "qcdq", self.tmp / f"vitq_{recipe}_qcdq.onnx", example[:1].expand(big, -1, -1, -1).clone()
            )
            sess = ort_session(path, threads, qcdq=True)
        except VitqError as exc:
            self.rows.append(
                result_row(
                    "baseline",
                    name,
                    recipe=recipe,
                    backend="brevitas->onnxruntime",
                    w_bits=w,
                    a_bits=a,
                    attn_bits=attn,
                    status="unsupported",
                    reason=str(exc),
                )
            )
            return
        self._qcdq_row(
            cfg_t, sess, path, t0, "the paper's recipe exported to standard ONNX and run by ONNX Runtime"
        )

    def _qcdq_row(
        self, cfg_t: tuple[str, int, int, int], sess: Any, path: Path, t0: float, reason: str
    ) -> None:
        """Evaluate an ORT session of a vitq QCDQ file on the evaluation images; add its baseline row."""
        from vitq_plugins.evaluation.evaluate import evaluate

        recipe, w, a, attn = cfg_t
        big = max(SPEED_BATCHES)
        res = evaluate(AsModule(ort_runner(sess, big)), self.eval_loader, self.fp_eval.logits, progress=False)
        self.rows.append(
            result_row(
                "baseline",
                f"vitq {recipe} W{w}A{a} attn{attn} [brevitas] QCDQ export in ORT",
                recipe=recipe,
                backend="brevitas->onnxruntime",
                w_bits=w,
                a_bits=a,
                attn_bits=attn,
                top1=res.top1,
                top1_drop=self.fp_eval.top1 - res.top1,
                agreement=res.agreement,
                kl=res.kl,
                size_mb=onnx_weight_mb(path),
                eval_s=res.seconds,
                wall_s=time.perf_counter() - t0,
                n_eval=res.n,
                n_calib=self.calib_loader.num_images,
                reason=reason,
            )
        )
        self.log(f"  vitq {recipe} QCDQ in ORT: top-1 {res.top1:.4f} agree {res.agreement:.4f}")

    # --- PT2E: torch.compile of the converted int8 models against torch.compile of fp32 (--compile)
    def compiled(self) -> None:
        """The compiled-speed table: every model of :data:`COMPILE_MODELS` x batch, engines side by side."""
        from integration.benchlib.compiled import bench_model

        t_all = time.perf_counter()
        threads = torch.get_num_threads()
        if self.args.speed_threads:
            torch.set_num_threads(self.args.speed_threads)
        opts = argparse.Namespace(
            recipes=",".join(COMPILE_RECIPES),
            batches=",".join(map(str, COMPILE_BATCHES)),
            calib=64,
            eval=self.plan.n_eval or 2000,
            reps=self.plan.reps,
            warmup=self.plan.warmup,
        )

        def emit(r: dict[str, Any]) -> None:
            engine = str(r["engine"])
            note = str(r.get("note") or "")
            row = result_row(
                "compiled",
                engine,
                recipe=r["recipe"] or "fp32",
                backend="pt2e" if r["recipe"] else "torch",
                w_bits=r["w_bits"],
                a_bits=r["a_bits"],
                attn_bits=r["attn_bits"],
                batch=r.get("batch"),
                median_ms=r.get("median_ms"),
                x_fp32_compiled=r.get("speedup_vs_fp32_compiled"),
                compile_s=r.get("compile_s"),
                calib_s=r.get("quantize_s"),
                top1=r.get("top1"),
                n_eval=r.get("n_eval"),
                n_calib=r.get("n_calib"),
                model=r["model"],
                reason=note
                or f"{r['weights']} weights; load {r.get('load_before')} -> {r.get('load_after')}",
            )
            if note:
                row["status"] = "unsupported"
            self.rows.append(row)
            self.log(
                f"  compiled {r['model']} {engine} b{r.get('batch')}: x {r.get('speedup_vs_fp32_compiled')}"
            )

        try:
            for model in COMPILE_MODELS:
                bench_model(model, opts, emit)
        finally:
            torch.set_num_threads(threads)
        self.timings["compiled"] = time.perf_counter() - t_all

    # --- every recipe x wing on a ViT-S shape: logit cosine and quantize time (--scale)
    def scale(self) -> None:
        """DeiT-S (random weights): each recipe's W8A8 logit cosine with float and its quantize time."""
        from integration.benchlib.scale import scale_rows

        t_all = time.perf_counter()

        def emit(r: dict[str, Any]) -> None:
            ok = r["status"] == "ok"
            self.rows.append(
                result_row(
                    "scale",
                    f"{r['recipe']} [{r['backend']}]",
                    status="ok" if ok else "unsupported",
                    reason="" if ok else r["status"],
                    model=r["model"],
                    recipe=r["recipe"],
                    backend=r["backend"],
                    w_bits=r["w_bits"],
                    a_bits=r["a_bits"],
                    attn_bits=r["attn_bits"],
                    cosine=r.get("cosine"),
                    agreement=r.get("agreement"),
                    calib_s=r.get("quantize_s"),
                    calib_x_fp=r.get("quantize_x_fp"),
                    n_eval=r["n_eval"],
                    n_calib=r["n_calib"],
                )
            )

        scale_rows(
            SCALE_MODEL,
            self.plan.recipes,
            self.plan.backends,
            [SCALE_SETTING],
            emit,
            n_calib=SCALE_IMAGES,
            n_eval=SCALE_IMAGES,
            seed=self.args.seed,
            log=self.log,
        )
        self.timings["scale"] = time.perf_counter() - t_all

    def provenance(self, wall: float) -> dict[str, Any]:
        from vitq_plugins.pipeline import versions

        v = versions()
        v["onnxruntime"] = package_version("onnxruntime")
        v["onnx"] = package_version("onnx")
        v["python"] = platform.python_version()
        return {
            "command": "python integration/benchmark.py " + " ".join(shlex.quote(a) for a in self.args.argv),
            "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "git_commit": git_commit(ROOT),
            "versions": v,
            "model": self.args.model,
            "seed": self.args.seed,
            "eval_data": self.eval_name,
            "n_eval": self.fp_eval.n,
            "eval_split_size": len(self.eval_ds),
            "calib_data": self.calib_name,
            "n_calib": self.calib_loader.num_images,
            "n_ort_calib": self.ort_calib_loader.num_images,
            "n_mp_calib": self.plan.n_mp_calib,
            "batch_size": self.args.batch_size,
            "threads": self.args.threads,
            "executor": repr(self.executor),
            "speed_threads": self.args.speed_threads or self.args.threads,
            "torch_threads": torch.get_num_threads(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "quick": bool(self.args.quick),
            "wall_s": round(wall, 1),
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            # the same configurations with every evaluation on the whole split (speed/ONNX parts as measured)
            "projected_full_split_s": round(
                wall
                + sum(
                    self.projected(r) - float(r["wall_s"] or 0.0)
                    for r in self.rows
                    if r["eval_s"] is not None
                ),
                1,
            ),
            "notes": self.notes,
        }


def _avg(values: Sequence[int], weights: Sequence[int]) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / max(sum(weights), 1)
