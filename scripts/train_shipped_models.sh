#!/usr/bin/env bash
# Generate the simulated dataset and train every shipped model into models/ with fixed seeds.
# Sized for <= 60 min on a quiet 2-core CPU (docs/TRAINING.md). Re-running resumes/skips
# what is already done. Extra arguments go to `admn-ros train all` (e.g. --stage1-epochs 12).
#
#   scripts/train_shipped_models.sh                 # data/gdtm_sim, runs/shipped, models/
#   DATA=/tmp/sim RUNS=/tmp/runs scripts/train_shipped_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/gdtm_sim}
RUNS=${RUNS:-runs/shipped}
MODELS=${MODELS:-models}
SEED=${SEED:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$PY" -m admn_ros.core.train.cli all --data "$DATA" --runs "$RUNS" --models "$MODELS" --seed "$SEED" "$@"
