#!/usr/bin/env bash
# Recipe v3 (examples/configs/small_distill.yaml) for many more steps in bf16 on a lent GPU machine (the
# `device` tool: the repository plus at most 64 MiB, no ../shared/data, no internet), from packed caches.
#
# Prepare here (once the recipe's caches exist: the first examples/train.py run makes them):
#   python scripts/training_pack.py pack --config examples/configs/small_distill.yaml   # -> outputs/training_pack
#   pip download datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 --no-deps --python-version 3.12 \
#       --only-binary=:all: -d outputs/wheels    # what the lent machine's Python lacks (docs/training.md)
# Run there, carrying outputs/training_pack and outputs/wheels:
#   bash scripts/train_on_lent_gpu.sh           # WALL (s, default 420), STEPS, PRECISION, WORKERS, EXTRA
# The run stops after WALL seconds at the latest (a checkpoint every 500 steps) and the last checkpoint is
# exported to $OUT/model (with its training log) to come back. Checked on this CPU machine with
#   PYTHON=.venv/bin/python PRECISION=no STEPS=4 SAVE_EVERY=2 OUT=/tmp/lent bash scripts/train_on_lent_gpu.sh
set -euo pipefail
PYTHON=${PYTHON:-python3}
WALL=${WALL:-420}
STEPS=${STEPS:-40000}
PRECISION=${PRECISION:-bf16}
WORKERS=${WORKERS:-8}
SAVE_EVERY=${SAVE_EVERY:-500}
OUT=${OUT:-outputs/lent_gpu}
RUN=outputs/lent_gpu_run

if ! "$PYTHON" -c "import datasets" 2>/dev/null; then
    "$PYTHON" -m pip install --no-index --no-deps outputs/wheels/*.whl
fi
if ! "$PYTHON" -c "import sapiensid_hf.modeling" 2>/dev/null; then
    "$PYTHON" -m pip install --no-index --no-deps --no-build-isolation -e .
fi
"$PYTHON" scripts/training_pack.py unpack outputs/training_pack --root outputs/training_data
rm -rf "$RUN"
# shellcheck disable=SC2046  # overrides.txt holds one --set per cache and manifest
timeout --signal=INT "$WALL" "$PYTHON" examples/train.py --config examples/configs/small_distill.yaml \
    $(cat outputs/training_data/overrides.txt) --set "mixed_precision='$PRECISION'" \
    --set schedule.max_steps="$STEPS" --set data.num_workers="$WORKERS" --set logging.output_dir="$RUN" \
    --set logging.save_every_steps="$SAVE_EVERY" --set logging.progress_bar=false ${EXTRA:-} || true
mkdir -p "$OUT"
"$PYTHON" - "$RUN" "$OUT" <<'PYTHON'
import shutil
import sys
from pathlib import Path

from sapiensid_hf.training.export import export_checkpoint

run, out = Path(sys.argv[1]), Path(sys.argv[2])
finished = run / "final_model"
checkpoints = sorted((run / "checkpoints").glob("step_*"))  # zero-padded step numbers
if finished.is_dir():
    shutil.copytree(finished, out / "model", dirs_exist_ok=True)
    print(f"the run finished: {finished} -> {out / 'model'}")
elif checkpoints:
    export_checkpoint(checkpoints[-1], out / "model")
    print(f"stopped at the wall-clock limit: {checkpoints[-1].name} -> {out / 'model'}")
else:
    sys.exit(f"{run}: no checkpoint was saved before the limit: nothing to bring back")
for log in run.glob("*.jsonl"):
    shutil.copy(log, out / log.name)
PYTHON
