"""Verify an exported model against the unmerged base + adapter on the user's held-out data, then label it.

"Verified" means: token-weighted perplexity rises ≤ 5% and thinking compliance drops ≤ 2 points on the test
split. Writes ``export_metadata.json`` and a usage ``README.md`` into the export dir.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from ..io import write_files
from . import perplexity as ppl
from .metrics import sample_scores
from .thinking import answer_only, compliance, compliance_totals

MAX_PPL_RISE = 0.05  # a merge is exact up to float rounding; 4-bit GPTQ on own data typically stays within 1–3%
MAX_COMPLIANCE_DROP = 2.0  # points of 100: one lost thought in 50 prompts is already a behaviour change
THRESHOLDS = {"max_ppl_rise": MAX_PPL_RISE, "max_compliance_drop_points": MAX_COMPLIANCE_DROP}


def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int) -> list[dict]:
    """Greedy continuation per prompt: {"text", "tokens"} (special tokens kept so think tags stay visible)."""
    import torch

    device = next(model.parameters()).device
    drop = {t for t in (tokenizer.eos_token, tokenizer.pad_token) if t}
    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], device=device)
            new = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                                 do_sample=False)[0, len(ids):].tolist()
            text = tokenizer.decode(new, skip_special_tokens=False)
            for t in drop:
                text = text.replace(t, "")
            stopped = bool(new) and new[-1] == tokenizer.eos_token_id
            # tokens = max_new_tokens and no EOS: cut off (a stop exactly at the limit counts as not truncated)
            out.append({"text": text, "tokens": len(new) - 1 if stopped else len(new)})
    return out


def prompts_of(encoded: list[tuple[list[int], list[int]]]) -> list[list[int]]:
    """Prompt ids = the input ids before the first label token (LF's masked prompt of the last turn)."""
    return [ids[: next((i for i, y in enumerate(lab) if y != -100), len(ids))] for ids, lab in encoded]


def side(model, tokenizer, encoded, refs: list[str], n: int, max_new_tokens: int) -> dict:
    """Perplexity, compliance and answer metrics of one model on the same encoded test rows."""
    p = ppl.perplexity(ppl.sample_nll(model, encoded))
    gens = generate(model, tokenizer, prompts_of(encoded[:n]), max_new_tokens)
    comp = [compliance(g["text"], g["tokens"], max_new_tokens) for g in gens]
    scores = [sample_scores(answer_only(g["text"]), answer_only(r)) for g, r in zip(gens, refs, strict=False)]
    mean = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]} if scores else {}
    return {"perplexity": p["perplexity"], "perplexity_geomean": p["perplexity_geomean"],
            "compliance": compliance_totals(comp)["compliance"], "answer_metrics": mean,
            "outputs": [g["text"] for g in gens]}


def verdict(ref: dict, exp: dict) -> dict:
    rise = exp["perplexity"] / ref["perplexity"] - 1
    drop = ref["compliance"] - exp["compliance"]
    checks = {"ppl_rise": {"value": rise, "max": MAX_PPL_RISE, "ok": rise <= MAX_PPL_RISE},
              "compliance_drop": {"value": drop, "max": MAX_COMPLIANCE_DROP, "ok": drop <= MAX_COMPLIANCE_DROP}}
    passed = all(c["ok"] for c in checks.values())
    return {"verified": passed, "checks": checks, "advice": [] if passed else ADVICE}


ADVICE = ["GPTQ: export 8-bit (export_quantization_bit: 8) instead of 4-bit",
          "GPTQ: calibrate on more of your own Chinese training samples (export_quantization_nsamples ≥ 256), "
          "each longer than export_quantization_maxlen tokens",
          "merge: check that export used the same base model, template and adapter as training"]


def file_hash(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None


def metadata(base: str, adapter: str | None, export_dir: Path, bits: int | None, calib: Path | None,
             ref: dict, exp: dict, result: dict, data: str) -> dict:
    strip = lambda d: {k: v for k, v in d.items() if k != "outputs"}  # noqa: E731
    return {"base_model": base, "adapter": adapter, "export_dir": str(export_dir), "bits": bits,
            "calibration_sha256": file_hash(calib), "eval_data": data, "thresholds": THRESHOLDS,
            "reference": strip(ref), "export": strip(exp), "verdict": result,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def readme(meta: dict, template: str) -> str:
    d = meta["export_dir"]
    state = "VERIFIED" if meta["verdict"]["verified"] else "NOT verified"
    return f"""# Exported model — {state}

Base `{meta['base_model']}` + adapter `{meta['adapter']}`, bits: {meta['bits'] or 'unquantized (merged)'}.
Checked on `{meta['eval_data']}`: perplexity {meta['reference']['perplexity']:.4g} → {meta['export']['perplexity']:.4g},
thinking compliance {meta['reference']['compliance']:.1f} → {meta['export']['compliance']:.1f} (details: export_metadata.json).

## Use it

- LLaMA-Factory chat: `llamafactory-cli chat --model_name_or_path {d} --template {template}`
- OpenAI-compatible API: `API_PORT=8000 llamafactory-cli api --model_name_or_path {d} --template {template}`
- vLLM: `vllm serve {d}`
- transformers: `AutoModelForCausalLM.from_pretrained("{d}")` + `tokenizer.apply_chat_template(messages,
  add_generation_prompt=True)`

## How the reasoning appears

- `llamafactory-cli chat/api`: inline in the answer, as `<think>…</think>` followed by the answer.
- vLLM with a thinking chat template that pre-fills `<think>`: the output starts inside the thought and shows only
  `…</think>` (use `--reasoning-parser qwen3` to get it in `reasoning_content`).
- transformers `generate`: whatever follows the prompt; decode with `skip_special_tokens=False` if the think tags
  are special tokens in this tokenizer.
"""


def verify(base: str, adapter: str | None, export_dir: Path, rows: list[list[dict]], template: str, *,
           n: int = 8, max_new_tokens: int = 64, cutoff_len: int = 2048, bits: int | None = None,
           calib: Path | None = None, data: str = "") -> dict:
    """Compare export vs unmerged on the same rows; write metadata + README into ``export_dir``."""
    refs = [r[-1]["content"] for r in rows]
    model, tok = ppl.load_model(base, adapter)
    enc = ppl.encode(rows, tok, template, cutoff_len)
    ref = side(model, tok, enc, refs, n, max_new_tokens)
    model, tok = ppl.load_model(str(export_dir))
    exp = side(model, tok, ppl.encode(rows, tok, template, cutoff_len), refs, n, max_new_tokens)
    meta = metadata(base, adapter, export_dir, bits, calib, ref, exp, verdict(ref, exp), data)
    write_files({export_dir / "export_metadata.json": json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                 export_dir / "README.md": readme(meta, template)})
    return meta
