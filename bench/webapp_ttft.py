"""Time to first token: base + 3 LoRA adapters in one batched generate (the web app's engine) vs the base alone.

A random Qwen3-shaped model and three random rank-8 LoRA adapters on every linear layer are built in a temp folder
(next to the tests' BPE tokenizer); two engines (base alone; base + 3 adapters) load them through LLaMA-Factory
exactly as the web app does and answer the same prompt greedily, REPEAT times each, interleaved, after one warm-up
each. TTFT comes from the app's own BatchStreamer; medians, p90 and their ratio are printed (target ≤1.3×).
"multi" mixes the adapters the way the app does by default (LFX_LORA_BATCH, else stacked LoRA matmuls:
serve/stacked.py); each --compare MODE also times the same loaded model under another mode (engine.LORA_BATCHES:
peft = the old per-adapter mixed batch, stacked-model-dtype = stacks in bf16), as "multi_<mode>".

    python bench/webapp_ttft.py [--repeat 5] [--new-tokens 32] [--compare peft]    # CPU, tiny shape (~40M, fp32)
    python bench/webapp_ttft.py --device cuda --shape qwen3-4b --prompt-tokens 32,1000 --json out.json

Shapes: tiny = hidden 512, 8 layers; qwen3-1.7b / qwen3-4b = the real configs' hidden, layers, heads, kv heads,
head_dim and intermediate sizes (random bf16 weights on cuda). --vocab real (default for the qwen3 shapes) pads
the embedding / tied LM head to Qwen3's 151936 rows although the tokenizer has ~1.8k tokens (ids past it decode to
nothing); --vocab tokenizer keeps the tokenizer's size (as the tiny shape always did).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

QWEN3_VOCAB = 151936
SHAPES = {  # Qwen3-1.7B / Qwen3-4B config.json values; tiny = the CPU shape this script always used
    "tiny": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=64),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128),
}
PROMPT = "请解释 AES 的轮函数由哪几步组成，并说明每一步的作用。"
FILLER = "在分组密码中，轮函数把状态矩阵经过字节代换、行移位、列混合和轮密钥加四步反复变换，以获得扩散与混淆。"


def _dtype(device: str):
    import torch

    return torch.bfloat16 if device == "cuda" else torch.float32  # why: bf16 is how the app serves on a GPU


def build_base(folder: Path, shape: str, vocab: str, device: str):
    """Random weights made directly on ``device`` in the serving dtype (no fp32 CPU init of billions of params)."""
    import torch
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    build_tokenizer(folder / "base")
    tok = AutoTokenizer.from_pretrained(folder / "base")
    dtype = _dtype(device)
    cfg = Qwen3Config(vocab_size=QWEN3_VOCAB if vocab == "real" else len(tok), tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      dtype=str(dtype).removeprefix("torch."), **SHAPES[shape])
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    model.config.dtype = dtype
    model.save_pretrained(folder / "base")
    model.config._name_or_path = str(folder / "base")  # adapters record it, as after from_pretrained
    return model


def build(folder: Path, shape: str = "tiny", vocab: str = "tokenizer", device: str = "cpu"):
    """Base folder + 3 adapter folders; returns (base path, {name: adapter path}, parameter count)."""
    from peft import LoraConfig, get_peft_model

    model = build_base(folder, shape, vocab, device)
    params = sum(p.numel() for p in model.parameters())
    adapters = {}
    for i in range(3):
        lora = LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False)  # random B: a "trained" adapter
        peft_model = get_peft_model(model, lora)
        peft_model.save_pretrained(folder / f"a{i}")
        model = peft_model.unload()
        adapters[f"a{i}"] = str(folder / f"a{i}")
    del model, peft_model
    _free(device)
    return folder / "base", adapters, params


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def make_prompt(engine, tokens: int | None) -> str:
    """The fixed question, or filler text cut so the templated prompt is ``tokens`` long (within a token)."""
    if not tokens:
        return PROMPT
    text = FILLER
    while len(engine.prompt_ids(text, True)) < tokens:
        text += FILLER
    lo, hi = 1, len(text)
    while lo < hi:  # largest prefix whose templated length stays ≤ tokens
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(engine.prompt_ids(text[:mid], True)) <= tokens else (lo, mid - 1)
    return text[:lo]


def timed_streamer():
    from llamafactory_ext.serve.streamer import BatchStreamer

    class TimedStreamer(BatchStreamer):
        """The app's streamer, also stamping every generated step (for the decode rate)."""

        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.stamps: list[float] = []

        def put(self, value) -> None:
            prompt_done = self._prompt_seen
            super().put(value)
            if prompt_done:
                self.stamps.append(time.perf_counter() - self.started)

    return TimedStreamer


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def one_run(engine, prompt: str, settings, device: str) -> dict:
    import torch

    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    answers, streamer = engine.generate(prompt, settings, engine.columns, timed_streamer())
    _sync(device)
    total = time.perf_counter() - t0
    stamps = streamer.stamps
    decode = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    return {"ttft": max(a.ttft for a in answers), "total": total, "steps": len(stamps),
            "decode_s": decode, "rows": len(answers),
            "peak": torch.cuda.max_memory_allocated() if device == "cuda" else 0}


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


def summarize(runs: list[dict]) -> dict:
    ttft, total = [r["ttft"] * 1000 for r in runs], [r["total"] * 1000 for r in runs]
    rates = [(r["steps"] - 1) / r["decode_s"] for r in runs if r["decode_s"] > 0]
    row_rate = statistics.median(rates) if rates else 0.0
    return {"ttft_ms": {"median": statistics.median(ttft), "p90": _p90(ttft), "all": ttft},
            "total_ms": {"median": statistics.median(total), "p90": _p90(total), "all": total},
            "steps": [r["steps"] for r in runs], "rows": runs[0]["rows"],
            "decode_tok_s_per_row": row_rate, "decode_tok_s_all_rows": row_rate * runs[0]["rows"],
            "peak_generate_gib": max(r["peak"] for r in runs) / 2**30}


def measure(engines: dict, prompt: str, settings, repeat: int, device: str) -> dict:
    for engine in engines.values():  # warm-up: kernels, cuBLAS handles, allocator pools
        one_run(engine, prompt, settings, device)
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for _ in range(repeat):
        for name, engine in engines.items():
            runs[name].append(one_run(engine, prompt, settings, device))
    return {name: summarize(r) for name, r in runs.items()}


def report(res: dict, new_tokens: int, repeat: int, adapters: int) -> None:
    s, m = res["single"], res["multi"]
    ratio = m["ttft_ms"]["median"] / s["ttft_ms"]["median"]
    print(f"columns: single = base; multi = base + {adapters} adapters, one batched generate")
    print(f"TTFT   single {s['ttft_ms']['median']:8.1f} ms   multi {m['ttft_ms']['median']:8.1f} ms   "
          f"ratio {ratio:.2f}x (target <= 1.3x)")
    print(f"total  single {s['total_ms']['median']:8.1f} ms   multi {m['total_ms']['median']:8.1f} ms   "
          f"ratio {m['total_ms']['median'] / s['total_ms']['median']:.2f}x ({new_tokens} new tokens, "
          f"median of {repeat})")
    print(f"p90    TTFT single {s['ttft_ms']['p90']:8.1f} ms   multi {m['ttft_ms']['p90']:8.1f} ms")
    print(f"decode single {s['decode_tok_s_per_row']:8.1f} tok/s   multi {m['decode_tok_s_per_row']:8.1f} tok/s "
          f"per row ({m['decode_tok_s_all_rows']:.1f} tok/s over {m['rows']} rows); steps "
          f"{s['steps'][0]}/{m['steps'][0]}")
    for name in (n for n in res if n.startswith("multi_")):
        other = res[name]["ttft_ms"]["median"]
        print(f"mode   {name.removeprefix('multi_')}: multi {other:8.1f} ms TTFT (ratio "
              f"{other / s['ttft_ms']['median']:.2f}x), decode {res[name]['decode_tok_s_per_row']:.1f} tok/s per row")
    if s["peak_generate_gib"]:
        print(f"peak   generate single {s['peak_generate_gib']:.2f} GiB   multi {m['peak_generate_gib']:.2f} GiB "
              "(torch max allocated, both resident models included)")


def environment(device: str) -> dict:
    import llamafactory
    import peft
    import torch
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "llamafactory": getattr(llamafactory, "__version__", "?"), "python": sys.version.split()[0]}
    env["device_name"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return env


def load_engines(base: Path, adapters: dict, device: str, compare: tuple[str, ...] = ()) -> tuple[dict, dict]:
    from llamafactory_ext.serve.engine import Engine

    recipe = {"model_name_or_path": str(base), "template": "qwen3"}
    engines, seconds = {"single": Engine(recipe, {}), "multi": Engine(recipe, adapters)}, {}
    for name, engine in engines.items():
        t0 = time.perf_counter()
        engine.load()
        seconds[name] = time.perf_counter() - t0
        where = engine.model.device.type
        if where != device or engine.errors:
            raise RuntimeError(f"{name} engine: model on {where}, asked {device}; adapter errors {engine.errors}")
    for mode in compare:  # the same resident model, adapters mixed another way
        engines[f"multi_{mode}"] = engines["multi"].twin(mode)
    return engines, seconds


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--shape", choices=tuple(SHAPES), default="tiny")
    p.add_argument("--vocab", choices=("real", "tokenizer"), default=None,
                   help="embedding rows: Qwen3's 151936 or the tokenizer's size (default: real unless --shape tiny)")
    p.add_argument("--prompt-tokens", default="",
                   help="templated prompt lengths, comma-separated, e.g. 32,1000 (default: the fixed question)")
    p.add_argument("--json", type=Path, help="write the figures here (rewritten after each prompt length)")
    p.add_argument("--compare", action="append", default=[], choices=("peft", "stacked", "stacked-model-dtype"),
                   help="also time base+3 mixed this way on the same loaded model (repeatable); peft = the old path")
    args = p.parse_args(argv)
    args.vocab = args.vocab or ("tokenizer" if args.shape == "tiny" else "real")
    args.lengths = [int(x) for x in args.prompt_tokens.split(",") if x.strip()] or [None]
    return args


def run_length(engines: dict, length: int | None, args, settings) -> dict:
    prompt = make_prompt(engines["single"], length)
    res = measure(engines, prompt, settings, args.repeat, args.device)
    n = len(engines["single"].prompt_ids(prompt, True))
    print(f"--- {args.shape} on {args.device}, prompt {n} tokens (asked {length or 'default'})")
    report(res, args.new_tokens, args.repeat, len(engines["multi"].columns) - 1)
    ratio = res["multi"]["ttft_ms"]["median"] / res["single"]["ttft_ms"]["median"]
    extra = {f"ttft_ratio_{n.removeprefix('multi_')}": res[n]["ttft_ms"]["median"] / res["single"]["ttft_ms"]["median"]
             for n in res if n.startswith("multi_")}
    return {"prompt_tokens": n, "asked_prompt_tokens": length, "ttft_ratio": ratio, **extra,
            "lora_batch": engines["multi"].batching,
            "total_ratio": res["multi"]["total_ms"]["median"] / res["single"]["total_ms"]["median"],
            "target_met": ratio <= 1.3, **res}


def main(argv: list[str] | None = None) -> int:
    from llamafactory_ext.serve.engine import Settings

    args = parse(argv)
    out = {"shape": args.shape, "config": SHAPES[args.shape], "vocab": args.vocab, "device": args.device,
           "dtype": str(_dtype(args.device)), "new_tokens": args.new_tokens, "repeat": args.repeat,
           **environment(args.device), "results": []}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        base, adapters, out["params"] = build(Path(tmp), args.shape, args.vocab, args.device)
        out["build_s"] = time.perf_counter() - t0
        engines, out["load_s"] = load_engines(base, adapters, args.device, tuple(args.compare))
        out["resident_gib"] = _allocated(args.device)
        print(f"{args.shape}: {out['params'] / 1e6:.0f}M params ({args.vocab} vocab), {out['dtype']} on "
              f"{out['device_name']}; built in {out['build_s']:.1f}s, loaded in "
              f"{sum(out['load_s'].values()):.1f}s; LoRA batch: {engines['multi'].batching}", flush=True)
        settings = Settings(max_new_tokens=args.new_tokens, greedy=True)
        for length in args.lengths:
            try:
                out["results"].append(run_length(engines, length, args, settings))
            except Exception as exc:  # noqa: BLE001 — keep the other prompt lengths' figures
                failed = True
                out["results"].append({"asked_prompt_tokens": length, "error": f"{type(exc).__name__}: {exc}"})
                print(f"--- prompt {length}: FAILED {type(exc).__name__}: {exc}", flush=True)
            _write(args.json, out)
    return 1 if failed else 0


def _allocated(device: str) -> float:
    """GiB held by both resident engines (base twice + adapters) before any generate."""
    import torch

    return torch.cuda.memory_allocated() / 2**30 if device == "cuda" else 0.0


def _write(path: Path | None, out: dict) -> None:
    if path:
        path.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
