#!/bin/bash
# One GPU device call: the web app's TTFT (base + 3 LoRA adapters in one batched generate vs the base alone) on
# random-weight Qwen3-1.7B and Qwen3-4B shapes (bf16), short and ~1000-token prompts, via bench/webapp_ttft.py.
# base+3 is timed on the same loaded model in the app's default mode (stacked LoRA matmuls, exact) and in each of
# GPU_CHECK_COMPARE (default: peft = the old per-adapter mixed batch, stacked-model-dtype = stacks cast to bf16).
#   bash bench/gpu_wheels.sh                 # here, once: the wheels the offline machine lacks → .whl/
#   bash bench/gpu_check.sh                  # there (carry [".whl"]), ≤7 min on an H100
#     (GPU_CHECK_COMPARE="stacked-model-dtype" skips re-timing the known PEFT path: about 2 min less)
# → $OUT/env.txt, $OUT/ttft_<shape>.json + .log, $OUT/summary.md (6 files) and a summary table on stdout.
# Dry run anywhere: GPU_CHECK_DEVICE=cpu GPU_CHECK_SHAPES=tiny GPU_CHECK_LENGTHS=16 OUT=/tmp/gc bash bench/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SHAPES=${GPU_CHECK_SHAPES:-"qwen3-1.7b qwen3-4b"}
LENGTHS=${GPU_CHECK_LENGTHS:-32,1000}  # why: TTFT on a GPU is mostly prefill, so a short and a long prompt
REPEAT=${GPU_CHECK_REPEAT:-5}
NEW=${GPU_CHECK_NEW_TOKENS:-32}
COMPARE=""
for mode in ${GPU_CHECK_COMPARE-peft stacked-model-dtype}; do COMPARE="$COMPARE --compare $mode"; done
SITE=${GPU_CHECK_SITE:-/tmp/site}
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export DISABLE_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# why: the random 4B checkpoint (8 GB) is written and read back twice; RAM-backed /dev/shm when it has room
if [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt 25000000 ] 2>/dev/null; then export TMPDIR=/dev/shm; fi
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

limit() {  # seconds per shape; why: 1.7b ≈ 115 s and 4b ≈ 165 s expected with the comparisons, sum < 7 min
  case $1 in qwen3-1.7b) echo "${GPU_CHECK_TIMEOUT:-170}" ;; qwen3-4b) echo "${GPU_CHECK_TIMEOUT:-230}" ;;
    *) echo "${GPU_CHECK_TIMEOUT:-600}" ;; esac
}

# GPU_CHECK_PIP_ARGS: only for a dry run on another Python, e.g. "--python-version 3.12 --abi cp312 --platform
# manylinux2014_x86_64 --implementation cp --only-binary=:all:" installs the very cp312 wheels the GPU gets.
stamp "install $(ls .whl/*.whl | wc -l) wheels → $SITE" | tee "$OUT/env.txt"
# shellcheck disable=SC2086
timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" ${GPU_CHECK_PIP_ARGS:-} .whl/*.whl >> "$OUT/env.txt" 2>&1 || { echo "!! wheel install failed:"; tail -5 "$OUT/env.txt"; }
ls "$SITE" | grep dist-info >> "$OUT/env.txt"
if command -v nvidia-smi >/dev/null; then timeout 30 nvidia-smi; else echo "no nvidia-smi here"; fi >> "$OUT/env.txt" 2>&1
export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
timeout 90 python3 - >> "$OUT/env.txt" 2>&1 <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "datasets", "trl", "llamafactory"):
    try:
        mod = importlib.import_module(name)
        print(f"{name:13s} {getattr(mod, '__version__', '?'):12s} {mod.__file__}")
    except Exception as exc:  # noqa: BLE001 — report every package, then go on
        print(f"{name:13s} FAILED {type(exc).__name__}: {exc}")
import torch
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
from llamafactory_ext.serve.engine import Engine  # noqa: F401 — the import the bench needs
from llamafactory.model import load_model  # noqa: F401
print("engine + LF imports ok")
EOF
stamp "TMPDIR=${TMPDIR:-/tmp}; env: $(grep -E '^(cuda available|engine)' "$OUT/env.txt" | tr '\n' ';')"
grep -q "FAILED\|Error" "$OUT/env.txt" && tail -20 "$OUT/env.txt"
grep -E "^(torch|transformers|peft|llamafactory|datasets) " "$OUT/env.txt"

for shape in $SHAPES; do
  stamp "$shape: prompt tokens $LENGTHS, repeat $REPEAT, $NEW new tokens, limit $(limit "$shape")s"
  timeout -k 10 "$(limit "$shape")" python3 bench/webapp_ttft.py --device "$DEVICE" --shape "$shape" \
    --prompt-tokens "$LENGTHS" --repeat "$REPEAT" --new-tokens "$NEW" --json "$OUT/ttft_$shape.json" $COMPARE \
    > "$OUT/ttft_$shape.log" 2>&1
  rc=$?
  grep -E "^(---|columns|TTFT|total|p90|decode|mode|peak|$shape:)" "$OUT/ttft_$shape.log"
  [ $rc -ne 0 ] && { echo "!! $shape exit $rc (124 = timeout); log tail:"; tail -25 "$OUT/ttft_$shape.log"; }
  stamp "$shape done (exit $rc)"
done

python3 - "$OUT" $SHAPES <<'EOF' | tee "$OUT/summary.md"
import json, sys
from pathlib import Path
rows = ["| shape | device | prompt tok | TTFT base ms med/p90 | TTFT base+3 ms med/p90 | TTFT ratio (≤1.3) | "
        "total ratio | decode tok/s/row base / +3 | resident GiB | peak gen GiB base / +3 | LoRA batch | "
        "other modes: TTFT +3 ms / ratio / decode tok/s/row |", "|" + "---|" * 12]
d = None
for path in sorted(Path(sys.argv[1]).glob("ttft_*.json")):
    d = json.loads(path.read_text(encoding="utf-8"))
    for r in d["results"]:
        if "error" in r:
            rows.append(f"| {d['shape']} | {d['device_name']} | {r['asked_prompt_tokens']} | FAILED: {r['error'][:80]} |")
            continue
        s, m = r["single"], r["multi"]
        rows.append(f"| {d['shape']} | {d['device_name']} | {r['prompt_tokens']} | "
                    f"{s['ttft_ms']['median']:.1f} / {s['ttft_ms']['p90']:.1f} | "
                    f"{m['ttft_ms']['median']:.1f} / {m['ttft_ms']['p90']:.1f} | {r['ttft_ratio']:.2f}× | "
                    f"{r['total_ratio']:.2f}× | {s['decode_tok_s_per_row']:.1f} / {m['decode_tok_s_per_row']:.1f} | "
                    f"{d['resident_gib']:.2f} | {s['peak_generate_gib']:.2f} / {m['peak_generate_gib']:.2f} | "
                    f"{r.get('lora_batch', '?')[:60]} | " + ("; ".join(
                        f"{k[6:]} {v['ttft_ms']['median']:.1f} / {r['ttft_ratio_' + k[6:]]:.2f}× / "
                        f"{v['decode_tok_s_per_row']:.1f}" for k, v in r.items() if k.startswith("multi_"))
                        or "none timed") + " |")
rows += [f"| {s} | no JSON: died before its first figure, see ttft_{s}.log |" for s in sys.argv[2:]
         if not (Path(sys.argv[1]) / f"ttft_{s}.json").exists()]
print("\n".join(rows))
print(f"\n{d['params'] / 1e9:.2f}B params last shape; vocab {d['vocab']}; {d['dtype']}; {d['new_tokens']} new tokens, "
      f"median of {d['repeat']}; torch {d['torch']}, transformers {d['transformers']}, peft {d['peft']}"
      if d else "no results")
EOF
stamp "all done"
