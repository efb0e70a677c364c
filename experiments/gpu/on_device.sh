#!/usr/bin/env bash
# The GPU check in one device call (experiments/gpu/README.md): the tests with CUDA present,
# the GPU benchmark, and a time-budgeted EDSR-baseline run with its Set5 curve. Each stage has
# its own time limit, so an overrun costs that stage only; what it writes lands in $OUT
# (7 files: device.txt, pytest.log, bench.log, results_cuda.md, results_cuda.json, train.log, curve.md).
#   Stage limits, sized for one call of at most 600 s: TEST_S (default 150), BENCH_S (300: BENCH_STEPS
#   timed steps, compile=true for EDSR-baseline only), TRAIN_MINUTES of training (1) + 60 s.
#   PYTHON: the interpreter with a CUDA torch (default python3, the device image's).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder the results go to}
TEST_S=${TEST_S:-150} BENCH_S=${BENCH_S:-300} TRAIN_MINUTES=${TRAIN_MINUTES:-1} BENCH_STEPS=${BENCH_STEPS:-5}
[ -d .gpu/wheels ] && [ -d .gpu/data ] || { echo "error: .gpu/ missing: run experiments/gpu/prepare_carry.sh here and carry .gpu" >&2; exit 2; }
SITE=${SITE:-/tmp/site}
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/wheels/*.whl \
    || { echo "error: installing .gpu/wheels failed" >&2; exit 2; }
export PYTHONPATH="$PWD:$SITE" SR_DATA_DIR="$PWD/.gpu/data" WANDB_MODE=offline PYTHONUNBUFFERED=1
stage() { echo "== $1 ($(date +%T))" | tee -a "$OUT/device.txt"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  $PY -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'lightning', lightning.__version__)"
  nproc; } > "$OUT/device.txt" 2>&1

stage "1. tests: -m 'gpu or not slow' (tests/test_install.py left out: it pip-installs from the registry, unreachable there)"
timeout "$TEST_S" $PY -m pytest -m "gpu or not slow" -n 8 -p no:cacheprovider -q -ra --durations=15 \
    --ignore=tests/test_install.py > "$OUT/pytest.log" 2>&1
echo "pytest exit $?" >> "$OUT/device.txt"

stage "2. make bench ARGS=\"--device cuda\""
timeout "$BENCH_S" $PY experiments/benchmarks/run.py --device cuda --steps "$BENCH_STEPS" \
    --compile edsr_baseline > "$OUT/bench.log" 2>&1
echo "bench exit $?" >> "$OUT/device.txt"
cp experiments/benchmarks/results_cuda.md experiments/benchmarks/results_cuda.json "$OUT/" 2>/dev/null

stage "3. EDSR-baseline x2 for $TRAIN_MINUTES minutes on T91 (32x32 LR patches: T91's smallest image is 78x78)"
run=$(mktemp -d)
timeout $((TRAIN_MINUTES * 60 + 60)) $PY -m sr_lightning.train experiment=edsr_baseline_div2k data=t91 \
    data/degradation=benchmark_lr data.patch_size=32 data.num_workers=8 trainer.accelerator=gpu \
    trainer.check_val_every_n_epoch=null budget_minutes="$TRAIN_MINUTES" logger=csv \
    "data.test_sets=[Set5,Set14,B100]" paths.data_dir="$SR_DATA_DIR" hydra.run.dir="$run" > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/device.txt"
$PY experiments/time_to_quality/curve.py "$run" > "$OUT/curve.md" 2>&1
stage "done"
