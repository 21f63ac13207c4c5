#!/usr/bin/env bash
# Recipe v3 (examples/configs/small_distill.yaml) for many more steps in bf16 on a lent GPU machine (the
# `device` tool: the repository plus at most 64 MiB, no ../shared/data, no internet), from packed caches.
#
# Prepare here (once the recipe's caches exist: the first examples/train.py run makes them):
#   python scripts/training_pack.py pack --config examples/configs/small_distill.yaml   # -> outputs/training_pack
#   pip download datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 --no-deps --python-version 3.12 \
#       --only-binary=:all: -d outputs/wheels    # what the lent machine's Python lacks (docs/training.md)
# Run there, carrying outputs/training_pack and outputs/wheels:
#   bash scripts/train_on_lent_gpu.sh
# Settings (environment): WALL (s from the script's start by which every run has ended, default 420),
# STEPS ("auto", default: a PROBE-second run measures the steps per second, and the schedule is sized to end
# before WALL, so that its learning rate decays fully; or a number), RUNS (runs side by side on the one GPU,
# one per line: "NAME [--set ...]"; default one run "v3"), PRECISION, WORKERS (per data loader), SAVE_EVERY.
# Each run is exported to $OUT/NAME.tar (its model folder with float16 weights, its training logs): the
# finished model, the model where the trainer's time limit ended it (schedule.max_time_s, 30 s before its
# share of WALL), or its last checkpoint where it had to be killed. Checked on this CPU machine with
#   PYTHON=.venv/bin/python PRECISION=no WALL=270 PROBE=100 WORKERS=1 SAVE_EVERY=5 OUT=/tmp/lent \
#       RUNS="a --set logging.log_every_steps=2" bash scripts/train_on_lent_gpu.sh
# (and STEPS=100000 WALL=200: ended by the time limit at step 64, exported), and run on a lent H200 twice on
# 2026-12-04 (docs/training.md, "On a lent GPU machine").
set -euo pipefail
START=$(date +%s)
PYTHON=${PYTHON:-python3}
WALL=${WALL:-420}
STEPS=${STEPS:-auto}
PROBE=${PROBE:-40}
PRECISION=${PRECISION:-bf16}
WORKERS=${WORKERS:-3}
SAVE_EVERY=${SAVE_EVERY:-1000}
RUNS=${RUNS:-v3}
OUT=${OUT:-outputs/lent_gpu}
ROOT=outputs/lent_gpu_runs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if ! "$PYTHON" -c "import datasets" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps outputs/wheels/*.whl
fi
if ! "$PYTHON" -c "import sapiensid_hf.modeling" 2>/dev/null; then  # the package maps modeling/ and processing/
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e .
fi
"$PYTHON" scripts/training_pack.py unpack outputs/training_pack --root outputs/training_data
rm -rf "$ROOT"
mkdir -p "$ROOT" "$OUT"

train() {  # NAME DIR MAX_STEPS SECONDS LIMIT EXTRA...: one run of the recipe, killed after SECONDS
    # LIMIT: the trainer's own time limit (schedule.max_time_s, or null): it ends the run at a log step once
    # its training time is up, saving a checkpoint and its model there; `timeout` is the backstop.
    local name=$1 dir=$2 steps=$3 seconds=$4 limit=$5
    shift 5
    # shellcheck disable=SC2046  # overrides.txt holds one --set per cache and manifest
    timeout --signal=INT "$seconds" "$PYTHON" examples/train.py --config examples/configs/small_distill.yaml \
        $(cat outputs/training_data/overrides.txt) --set "mixed_precision='$PRECISION'" \
        --set schedule.max_time_s="$limit" \
        --set schedule.max_steps="$steps" --set data.num_workers="$WORKERS" --set logging.output_dir="$dir" \
        --set logging.save_every_steps="$SAVE_EVERY" --set logging.progress_bar=false \
        --set logging.tensorboard=false "$@" >"$dir.log" 2>&1 || {
        local code=$?
        echo "$name: training ended with status $code (124: stopped at its time limit)"
        [ "$code" = 124 ] || tail -n 25 "$dir.log"
    }
}

one_run() {  # NAME EXTRA...: probe (STEPS=auto), the run itself, its export
    local name=$1
    shift
    local steps=$STEPS dir=$ROOT/$name
    if [ "$steps" = auto ]; then
        local probe_start
        probe_start=$(date +%s)
        train "$name" "$dir.probe" 200000 "$PROBE" null "$@"  # killed at PROBE s: only its log is read
        steps=$("$PYTHON" - "$dir.probe/train_log.jsonl" "$probe_start" "$START" "$WALL" <<'PYTHON'
import json
import sys
import time

log, probe_start, start, wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
entries = [json.loads(line) for line in open(log, encoding="utf-8")]
if len(entries) < 3:
    sys.exit(f"{log}: {len(entries)} log lines in the probe: too slow to size a schedule (see {log.rsplit('/', 1)[0]}.log)")
first, last = entries[1], entries[-1]  # the first window holds the start-up steps
rate = (last["step"] - first["step"]) / (last["wall_time_s"] - first["wall_time_s"])
overhead = (time.time() - probe_start) - last["wall_time_s"]  # start-up and shutdown, measured
seconds = start + wall - time.time() - overhead
# 0.85: runs side by side go slower than their probes said (2026-12-04: 12.6 steps/s against a probed 14.6)
print(max(100, int(0.85 * rate * seconds)))
print(f"probe: {rate:.2f} steps/s, {overhead:.0f} s start-up and shutdown; {seconds:.0f} s left for the run", file=sys.stderr)
PYTHON
)
    fi
    local left=$((START + WALL - $(date +%s)))
    echo "$name: $steps steps, stopped after $left s at the latest"
    # 30 s of the run's time for the trainer's start-up (imports) and its final saves
    train "$name" "$dir" "$steps" "$left" $((left > 60 ? left - 30 : left / 2)) "$@"
    "$PYTHON" - "$dir" "$OUT/$name" "$steps" <<'PYTHON'
import json
import shutil
import sys
from pathlib import Path

from sapiensid_hf.training.export import export_checkpoint, save_float16_weights

run, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
finished = run / "final_model"
checkpoints = sorted((run / "checkpoints").glob("step_*"))  # zero-padded step numbers
if finished.is_dir():
    shutil.copytree(finished, out / "model", dirs_exist_ok=True)
    record = json.loads((finished / "config.json").read_text(encoding="utf-8"))["training"]
    ended = f"ended by its time limit at step {record['steps']} of {steps}" if "stopped_by" in record else f"finished {steps} steps"
    print(f"{run.name}: {ended} -> {out / 'model'}")
elif checkpoints:
    export_checkpoint(checkpoints[-1], out / "model")
    print(f"{run.name}: stopped at the wall-clock limit: {checkpoints[-1].name} of {steps} -> {out / 'model'}")
else:
    sys.exit(f"{run}: no checkpoint was saved before the limit: nothing to bring back")
for log in [*run.glob("*.jsonl"), run.with_suffix(".log")]:
    shutil.copy(log, out / log.name)
# float16 weights, as the shipped folder holds them: a file coming back from the lent machine is 16 MiB at most
save_float16_weights(out / "model" / "model.safetensors", out / "model" / "model.safetensors")
PYTHON
    tar -cf "$OUT/$name.tar" -C "$OUT" "$name" && rm -rf "${OUT:?}/$name"
}

pids=()
while read -r name extra; do
    [ -n "$name" ] || continue
    # shellcheck disable=SC2086  # extra is a list of --set arguments
    one_run "$name" $extra &
    pids+=($!)
done <<<"$RUNS"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
ls -la "$OUT"
exit $status
