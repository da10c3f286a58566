#!/bin/bash
# Extend the VRAM calibration table on the GPU machine: bash bench/gpu/calib_ext.sh "Q15_… Q7_…"
set -u
export DISABLE_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/bench_out}; mkdir -p "$OUT"; A=/tmp/lfbench
[ -f /tmp/site/.done ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/base/*.whl && touch /tmp/site/.done; } || exit 1
export PYTHONPATH=/tmp/site:$PWD
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
[ -f $A/data/length_stats.json ] || python3 bench/gpu/build_assets.py $A --tokenizer-and-data > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
stamp assets
python3 bench/gpu/calib_ext.py $A $OUT/calib > /dev/null
for v in ${1}; do
  shape=$(grep -E "^${v} " <(python3 bench/gpu/calib_ext.py $A $OUT/calib) | cut -d' ' -f2)
  if [ "$shape" = gemma3_mm ]; then python3 bench/gpu/build_gemma_mm.py $A/gemma3_mm 2>&1 | grep -v Writing | tail -2
  else python3 bench/gpu/build_shape.py $A $shape 2>&1 | grep -v Writing | tail -1; fi
  timeout -k 10 ${PER_RUN_TIMEOUT:-120} python3 bench/gpu/measure.py $OUT/calib/$v.yaml --label $v --steps ${STEPS:-8} --warm 2 --out $OUT/calib_results.jsonl 2>&1 | grep -E "^\[|Error" | tail -2
  stamp "$v done"
done
