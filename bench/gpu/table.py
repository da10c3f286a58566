"""Print the GPU bench table with each planned recipe's ratio to the example recipe measured in the same run."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    base = next((r["steady"]["tok_s"] for r in rows if r["label"] == "example_recipe" and r.get("steady")), None)
    print("| recipe | cap GiB | bs×ga | packing | liger | GC off | 4-bit | eff tok/s | × example | peak alloc GiB "
          "| peak reserved GiB | GPU busy % | ok |")
    print("|" + "---|" * 13)
    for r in rows:
        c, st = r["cfg"], r.get("steady") or {}
        tok = st.get("tok_s", 0)
        ratio = f"{tok / base:.1f}×" if base and tok else "-"
        busy = st.get("gpu_busy_pct")
        print(f"| {r['label']} | {r.get('cap_gib') or '-'} | {c.get('per_device_train_batch_size')}×"
              f"{c.get('gradient_accumulation_steps')} | {c.get('packing') or c.get('neat_packing') or False} "
              f"| {bool(c.get('enable_liger_kernel'))} | {bool(c.get('disable_gradient_checkpointing'))} "
              f"| {c.get('quantization_bit') or '-'} | {tok:.0f} | {ratio} | {r['peak_alloc_gib']:.2f} "
              f"| {r['peak_reserved_gib']:.2f} | {busy if busy is None else round(busy)} | {r['ok']} "
              f"{r.get('error', '')[:80]} |")


if __name__ == "__main__":
    main(sys.argv[1])
