"""Benchmark: sampling 2,000 Belle rows from a 500,000-row file — our streaming sampler vs. `datasets`.

Usage: python bench/belle_sampling.py [--rows 500000] [--n 2000] [--seed 0] [--keep]
Builds a synthetic Belle-format JSONL in a temp dir, then times each method in its own fresh
subprocess (so peak RSS is per method) and prints PASS/FAIL against the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_SPEEDUP, TARGET_RSS_MB = 2.0, 10.0, 200.0

POOL = [
    "人工智能正在改变我们的生活方式和工作方式。", "请根据下面的描述写一段简短的总结。", "春天来了，公园里的花都开了，",
    "这个问题可以从三个方面来分析：", "首先，我们需要明确目标和约束条件；", "其次，要收集足够的数据并进行清洗，",
    "最后，对结果进行评估并不断改进。", "中国的四大发明是造纸术、印刷术、火药和指南针。", "他每天早上六点起床，坚持跑步半小时。",
    "学习一门新的语言需要耐心和大量的练习。", "以下是一个用Python实现的快速排序算法：", "健康的饮食应该包括蔬菜、水果和蛋白质。",
    "在撰写论文时，引用文献必须准确无误。", "这部电影讲述了一个关于友情和勇气的故事。", "地球绕太阳公转一周大约需要三百六十五天。",
    "请把下面这句话翻译成英文。", "经济增长与环境保护之间需要找到平衡点。", "他们在会议上讨论了新产品的市场策略。",
    "要解决这个数学题，可以先列出方程。", "长城是世界上最伟大的建筑工程之一。", "保持良好的睡眠习惯有助于提高记忆力。",
    "总之，这个方案在成本和效率上都有明显优势。", "你可以尝试以下几种方法来缓解压力：", "第一，合理安排时间；第二，适当运动。",
    "这道菜的做法很简单，只需要准备鸡蛋和西红柿。", "根据题目要求，答案应该是四十二。", "城市交通拥堵是一个复杂的社会问题。",
    "老师鼓励学生们多读书、多思考、多提问。", "这首诗表达了作者对故乡深深的思念。", "科学研究需要严谨的态度和创新的精神。",
]


def build_file(path: Path, rows: int, seed: int) -> None:
    """Belle-like rows: instruction 20-80 chars, input empty 60% of the time, output 50-800 chars (median ~90)."""
    rng = random.Random(seed)
    corpus = "".join(rng.choice(POOL) for _ in range(60_000))  # ~1.2M chars to slice fields from
    span = len(corpus) - 1000

    def text(length: int) -> str:
        start = rng.randrange(span)
        return corpus[start : start + length]

    with path.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            out_len = min(800, max(50, int(rng.lognormvariate(4.45, 0.65))))  # skewed like real answers
            row = {"instruction": text(rng.randint(20, 80)),
                   "input": "" if rng.random() < 0.6 else text(rng.randint(10, 120)),
                   "output": text(out_len)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# Each child prints one JSON line: seconds for the call, rows, peak RSS (VmHWM) and heavy modules seen.
CHILD_COMMON = """
import json, sys, time
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def report(seconds, rows):
    heavy = sorted(m for m in ("torch", "datasets", "pyarrow", "pandas") if m in sys.modules)
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_mb(), "heavy": heavy}))
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
"""
CHILD_OURS = CHILD_COMMON + """
from llamafactory_ext.data.sources.belle import sample_lines
t = time.perf_counter()
rows = sample_lines(path, n, seed)
report(time.perf_counter() - t, len(rows))
"""
CHILD_BASELINE = CHILD_COMMON + """
from datasets import load_dataset
t = time.perf_counter()
ds = load_dataset("json", data_files=path, split="train").shuffle(seed=seed).select(range(n))
rows = ds.to_list()
report(time.perf_counter() - t, len(rows))
"""


def run_child(code: str, args: list[str], env: dict[str, str]) -> dict:
    """Run one method in a fresh interpreter; add the wall time of the whole process (imports included)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (data file and HF cache)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="belle_bench_"))
    data = work / "Belle_open_source_0.5M.json"
    t = time.perf_counter()
    build_file(data, args.rows, args.seed)
    size_mb = data.stat().st_size / 2**20
    print(f"built {data} : {args.rows:,} rows, {size_mb:.0f} MiB in {time.perf_counter() - t:.1f} s")

    child_args = [str(data), str(args.n), str(args.seed)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    ours = run_child(CHILD_OURS, child_args, env)
    # A fresh, empty HF cache: the baseline pays its real first-load cost (Arrow conversion), no warm cache.
    cache = work / "hf_cache"
    base_env = {**env, "HF_HOME": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets"), "HF_HUB_OFFLINE": "1"}
    base = run_child(CHILD_BASELINE, child_args, base_env)

    report(ours, base)
    ok = verdict(ours, base)
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def report(ours: dict, base: dict) -> None:
    print(f"{'method':<10} {'call s':>8} {'process s':>10} {'peak RSS MB':>12} {'rows':>6}  heavy imports")
    for name, r in (("ours", ours), ("datasets", base)):
        heavy = ",".join(r["heavy"]) or "-"
        print(f"{name:<10} {r['seconds']:>8.2f} {r['process_seconds']:>10.2f} {r['peak_mb']:>12.0f} {r['rows']:>6}  {heavy}")
    print(f"speed-up (datasets / ours): call {base['seconds'] / ours['seconds']:.1f}x, "
          f"whole process {base['process_seconds'] / ours['process_seconds']:.1f}x (imports included)")


def verdict(ours: dict, base: dict) -> bool:
    checks = [
        (f"ours <= {TARGET_SECONDS} s", ours["seconds"] <= TARGET_SECONDS),
        (f"speed-up >= {TARGET_SPEEDUP}x", base["seconds"] / ours["seconds"] >= TARGET_SPEEDUP),
        (f"ours peak RSS <= {TARGET_RSS_MB} MB (whole process)", ours["peak_mb"] <= TARGET_RSS_MB),
        ("ours imports no torch/datasets", not ours["heavy"]),
    ]
    for label, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {label}")
    return all(passed for _, passed in checks)


if __name__ == "__main__":
    raise SystemExit(main())
