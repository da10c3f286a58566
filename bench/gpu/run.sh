#!/bin/bash
# GPU bench: our planner's recipes vs LF's example values, same run, same data (run from the repo root on the
# GPU machine, wheels in .whl/base).  bash bench/gpu/run.sh [budgets...]   → $OUT/results.jsonl + table on stdout
set -u
BUDGETS=${*:-"80 24 16 8"}
export DISABLE_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/bench_out}; mkdir -p "$OUT"; A=/tmp/lfbench
[ -f /tmp/site/.done ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/base/*.whl && touch /tmp/site/.done; } || exit 1
export PYTHONPATH=/tmp/site:$PWD
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
[ -f $A/model/param_counts.json ] || python3 bench/gpu/build_assets.py $A > $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
stamp "assets: $(grep -E '^(dataset|model)' $OUT/build.log | tr '\n' ' ')"
python3 bench/gpu/plan_bench.py $A $OUT/recipes $BUDGETS || exit 1
python3 bench/gpu/measure.py $OUT/recipes/example.yaml --label example_recipe --steps ${EX_STEPS:-12} --warm 3 --out $OUT/results.jsonl 2>&1 | grep -E "^\[|Error" | tail -3
stamp example done
for g in $BUDGETS; do
  cap=""; [ "$g" != 80 ] && cap="--cap-gib $g"
  timeout -k 10 ${PER_RUN_TIMEOUT:-150} python3 bench/gpu/measure.py $OUT/recipes/planned_$g.yaml --label planned_$g $cap --steps ${STEPS:-20} --warm 4 --out $OUT/results.jsonl 2>&1 | grep -E "^\[|Error" | tail -3
  stamp "planned_$g done"
done
python3 bench/gpu/table.py $OUT/results.jsonl | tee $OUT/table.md
