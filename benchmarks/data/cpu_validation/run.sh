set -x
cd /work/main && . .venv/bin/activate
cd /tmp/cpuval
date
time llmsim calibrate --out calibrated.yaml
for m in gpt2 gpt2-medium gpt2-large; do
  time llmsim validate --hw calibrated.yaml --device cpu --model $m --dtype fp32 \
    --cases prefill:1x32,prefill:1x128,decode:1x128,decode:4x128 --iters 10 --json val-cpu-$m.json
done
date
