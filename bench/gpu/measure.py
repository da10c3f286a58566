"""Run one LLaMA-Factory recipe YAML on the GPU and measure it (one process per recipe, so peaks are per recipe).

    python bench/gpu/measure.py RECIPE.yaml --label NAME [--cap-gib 16] [--steps 25 --warm 5] [--out results.jsonl]

Effective tokens/s = non-padding input tokens per second over steady-state optimizer steps (WARM+1..STEPS),
counted on the GPU inside Trainer.compute_loss (no extra syncs), stamped after each optimizer step. ``--cap-gib``
caps the process with torch.cuda.set_per_process_memory_fraction, to check a recipe planned for a smaller card.
Method adapted from shared/gpu/lf_run.py (the kit that produced vram_calibration.json).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("--label", required=True)
    p.add_argument("--cap-gib", type=float)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--warm", type=int, default=5)
    p.add_argument("--out", default=os.path.join(os.environ.get("OUT", "/tmp"), "results.jsonl"))
    p.add_argument("--set", nargs="*", default=[], help="key=value overrides (YAML scalars)")
    a = p.parse_args(argv)
    import torch
    import yaml

    cfg = yaml.safe_load(Path(a.recipe).read_text())
    cfg.update({k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)})
    cfg.update(max_steps=a.steps, save_strategy="no", logging_steps=1, output_dir=f"/tmp/measure/{a.label}",
               overwrite_output_dir=True, report_to="none")
    cfg.pop("num_train_epochs", None)
    if a.cap_gib:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, a.cap_gib / total))
    res = _run(cfg, a)
    res.update(label=a.label, recipe=a.recipe, cap_gib=a.cap_gib,
               cfg={k: cfg.get(k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "cutoff_len",
                                             "packing", "neat_packing", "enable_liger_kernel", "quantization_bit",
                                             "disable_gradient_checkpointing", "lora_rank", "pure_bf16")})
    with open(a.out, "a") as fh:
        fh.write(json.dumps(res) + "\n")
    st = res.get("steady", {})
    print(f"[{a.label}] ok={res['ok']} {st.get('tok_s', 0):.0f} eff tok/s, peak alloc {res['peak_alloc_gib']:.2f} GiB, "
          f"reserved {res['peak_reserved_gib']:.2f} GiB {res.get('error', '')}", flush=True)
    return 0 if res["ok"] else 1


def _pad_id(model_dir: str) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok.pad_token_id if tok.pad_token_id is not None else 0


def _run(cfg: dict, a) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback

    pad, acc, rows = _pad_id(cfg["model_name_or_path"]), {}, []
    orig = Trainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kw):
        real = inputs["input_ids"] != pad
        s = torch.stack([real.sum(), inputs["input_ids"].numel() * real.new_ones(())])
        acc["c"] = acc["c"] + s if "c" in acc else s
        return orig(self, model, inputs, *args, **kw)

    Trainer.compute_loss = compute_loss

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            rows.append([state.global_step, time.perf_counter(), *(acc["c"].tolist() if "c" in acc else [0, 0])])

    util: list[tuple[float, int]] = []
    stop = threading.Event()
    threading.Thread(target=_poll_util, args=(util, stop), daemon=True).start()
    res: dict = {}
    try:
        from llamafactory.train.tuner import run_exp

        run_exp(args=cfg, callbacks=[Stamp()])
        res["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - record OOM and friends
        res["ok"], res["error"] = False, f"{type(exc).__name__}: {str(exc)[:400]}"
    stop.set()
    res.update(peak_alloc_gib=torch.cuda.max_memory_allocated() / 2**30,
               peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30)
    if len(rows) > a.warm + 1:
        (s0, t0, tok0, slot0), (s1, t1, tok1, slot1) = rows[a.warm - 1], rows[-1]
        busy = [u for t, u in util if t0 <= t <= t1]
        res["steady"] = dict(steps=s1 - s0, sec=t1 - t0, tok_s=(tok1 - tok0) / (t1 - t0),
                             pad_frac=1 - (tok1 - tok0) / max(slot1 - slot0, 1),
                             gpu_busy_pct=sum(busy) / len(busy) if busy else None)
    return res


def _poll_util(util: list, stop: threading.Event) -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        while not stop.is_set():
            util.append((time.perf_counter(), pynvml.nvmlDeviceGetUtilizationRates(h).gpu))
            time.sleep(0.1)
    except Exception:  # noqa: BLE001 - utilisation is optional
        pass


if __name__ == "__main__":
    raise SystemExit(main())
