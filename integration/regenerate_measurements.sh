#!/usr/bin/env bash
# Regenerate every measurement that quotes the reference model: docs/measurements/* and docs/RESULTS.md.
#
# Run after the bundled weights change (integration/bench_fp_accuracy.py --update-metadata first), on a
# quiet machine: the speed columns are medians of interleaved runs, but two torch jobs on 2 cores still
# disturb each other. Each step is one benchmark script; nothing here edits a number by hand.
#
#   bash integration/regenerate_measurements.sh            # everything (about 1.5 hours on 2 cores)
#   bash integration/regenerate_measurements.sh ops int    # only some steps (the list below)
#
# Steps: fp ops quantize int mp (accuracy; fine on a busy machine), then the timings, which want a quiet one:
# int-speed (re-times the integer programs, keeping the accuracy of "int"), calib-speed, fx, explorer, results.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
M=docs/measurements
DATA=${DATA:-../shared/data/cifar10}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(fp ops quantize int mp int-speed calib-speed fx explorer results)
export OMP_NUM_THREADS=2

for step in "${steps[@]}"; do
    echo "== $step ($(date -u +%H:%M:%S))" >&2
    case "$step" in
    fp) # FP top-1 on the full test split and the bundled 2,000 images
        "$PY" integration/bench_fp_accuracy.py --data "$DATA" --out "$M/eval_fp.json" --no-progress ;;
    ops) # kernel errors on the reference model's activations
        "$PY" integration/bench_ops.py --real 64 --out "$M/bench_ops_real.csv" ;;
    calib-speed) # the cost of PTS calibration against the float forward
        "$PY" integration/bench_ops.py --calib-only --out "$M/bench_ops_calib.csv" ;;
    quantize) # the README's two vitq quantize examples, as JSON
        for r in minmax fqvit; do
            "$(dirname "$PY")/vitq" quantize --model vit_tiny_cifar10 --recipe "$r" --backend brevitas \
                --w-bits 8 --a-bits 8 --attn-bits 4 --json >"$M/quantize_brevitas_${r}_w8a8attn4.json.tmp"
            mv "$M/quantize_brevitas_${r}_w8a8attn4.json.tmp" "$M/quantize_brevitas_${r}_w8a8attn4.json"
        done ;;
    int) # integer-only inference: agreement, bit-exact ONNX, speed
        "$PY" integration/bench_int_inference.py --recipe ivit --backend brevitas --out "$M/int_inference_ivit"
        "$PY" integration/bench_int_inference.py --recipe ivit --backend fx --out "$M/int_inference_ivit_fx"
        "$PY" integration/bench_int_inference.py --recipe fqvit --backend brevitas --out "$M/int_inference_fqvit"
        "$PY" integration/bench_int_inference.py --recipe fqvit --backend fx --attn-bits 4 \
            --out "$M/int_inference_fqvit_fx" ;;
    int-speed) # the integer programs timed again (accuracy from "int" kept)
        for spec in "ivit brevitas int_inference_ivit" "ivit fx int_inference_ivit_fx" \
            "fqvit brevitas int_inference_fqvit" "fqvit fx int_inference_fqvit_fx --attn-bits 4"; do
            set -- $spec
            "$PY" integration/bench_int_inference.py --speed-only --recipe "$1" --backend "$2" --out "$M/$3" "${@:4}"
        done ;;
    mp) # mixed precision against uniform bit-widths, every point evaluated
        "$PY" integration/bench_mixed_precision.py --out "$M/mixed_precision.csv" ;;
    fx) # the FX wing's converted models against fp32
        "$PY" integration/bench_fx_latency.py --out "$M/fx_latency.csv" ;;
    explorer) # the explorer's jobs timed
        "$PY" integration/bench_explorer.py --out "$M/explorer_timing.csv" ;;
    results) # docs/RESULTS.md and docs/measurements/results.csv in one run
        "$PY" integration/benchmark.py --eval 2000 --no-progress ;;
    *)
        echo "unknown step '$step'; valid: fp ops quantize int mp int-speed calib-speed fx explorer results" >&2
        exit 2 ;;
    esac
done
