#!/usr/bin/env bash
# Everything issue 4 needs from a lent H100, in one device call (about 10 minutes at most).
# Here first, once:   see docs/validation.md "Running the GPU session" (wheels into .whl/, ignored by git)
# Device call:        run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
# Results land in $OUT (the device tool's folder; ./gpu_out elsewhere).
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba-cache PYTHONPATH=$PWD
if ls .whl/*.whl >/dev/null 2>&1; then   # what the device image lacks: pydantic, simpy, ...
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, llmsim.engine; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1
python3 benchmarks/gpu_fidelity.py measure --out "$OUT/h100_gpt2_fidelity.json" 2>&1 | tee "$OUT/measure.log"
python3 benchmarks/framework_calls.py --device cuda --models gpt2 2>&1 | tail -3 | tee "$OUT/framework_calls.txt"
# the eager host model on host-bound steps (64-wide models): decides whether h100 takes framework.eager_op_s
python3 benchmarks/host_bound.py --device cuda --hw h100 --json "$OUT/host_bound_cuda.json" 2>&1 | tee "$OUT/host_bound.txt"
python3 benchmarks/gpu_fidelity.py score --data "$OUT/h100_gpt2_fidelity.json" --hw h100 --markdown 2>&1 \
  | tee "$OUT/score.md"
