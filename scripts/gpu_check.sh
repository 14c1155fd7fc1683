#!/usr/bin/env bash
# The prepared GPU check: the `gpu` profile end to end on one CUDA GPU with no network, writing reports/gpu/.
#
# The machine is assumed to have torch (CUDA), transformers, peft, accelerate, pandas, pyarrow, scikit-learn and
# sentence-transformers. Everything else travels as wheels in .whl/ (scripts/fetch_gpu_wheels.sh downloads them here,
# on a machine with PyPI). Usage, from the repository root on the GPU machine:
#   bash scripts/gpu_check.sh [OUT_DIR]     # OUT_DIR receives reports/gpu and the log (default: ./gpu-out)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: the gpu profile needs one"
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true

start=$(date +%s)
set -o pipefail
python3 -m usergpt.reproduce --profile gpu --out "$out/run" 2>&1 | tee "$out/gpu_check.log"
echo "gpu profile: $(( $(date +%s) - start )) s of wall time" | tee -a "$out/gpu_check.log"
cp -r "$out/run/reports/gpu" "$out/reports-gpu"
