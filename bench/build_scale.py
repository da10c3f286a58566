"""Benchmark: `build_dataset belle --sample N` at scale — `--workers 1` against the parallel path.

Usage: python bench/build_scale.py [--rows 10000 40000 160000 500000] [--workers 2] [--seed 0] [--repeat 1] [--datatrove]
Writes synthetic Belle-style rows (general Chinese text made from a word list and everyday sentences, a few
cryptography terms, ~1% exact and ~2% lightly edited copies; generated here, nothing downloaded), then runs each
build in its own subprocess and prints seconds, samples/s, peak RSS of the whole process tree (the build process
and its workers: the maximum over time of the sum of their resident sets, sampled every 50 ms) and the
speed-up. The two outputs of each size must be byte-identical; the script says so or exits 1.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_MB = 120.0, 1024.0  # issue 15: 0.5M rows in ≤2 min and ≤1 GB on 2 cores

CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
         "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好"
         "应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道"
         "命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长"
         "求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色"
         "光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教"
         "速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记")
SENTENCES = (
    "人工智能正在改变我们的生活方式和工作方式。", "请根据下面的描述写一段简短的总结。", "春天来了，公园里的花都开了。",
    "这个问题可以从三个方面来分析：", "首先，我们需要明确目标和约束条件；", "其次，要收集足够的数据并进行清洗。",
    "中国的四大发明是造纸术、印刷术、火药和指南针。", "学习一门新的语言需要耐心和大量的练习。",
    "健康的饮食应该包括蔬菜、水果和蛋白质。", "地球绕太阳公转一周大约需要三百六十五天。", "请把下面这句话翻译成英文。",
    "经济增长与环境保护之间需要找到平衡点。", "保持良好的睡眠习惯有助于提高记忆力。", "总之，这个方案在成本和效率上都有明显优势。",
    "网站登录时密码应该经过哈希函数处理后再保存。", "数字签名可以证明文件没有被篡改。", "使用AES加密可以保护存储在硬盘上的数据。",
)  # fmt: skip


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(CHARS) for _ in range(rng.choice((1, 2, 2, 2, 3, 4)))) for _ in range(n)]


def _text(rng: random.Random, words: list[str], chars: int) -> str:
    """Sentences of random words with punctuation, and now and then an everyday sentence, to about ``chars``."""
    parts: list[str] = []
    size = 0
    while size < chars:
        if rng.random() < 0.15:
            part = rng.choice(SENTENCES)
        else:
            part = "".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + rng.choice("，。；！？")
        parts.append(part)
        size += len(part)
    return "".join(parts)


def build_file(path: Path, rows: int, seed: int) -> None:
    """Belle rows: instruction ~10–60 chars, input empty 60% of the time, output 30–800 chars (median ~90)."""
    rng = random.Random(seed)
    words = _words(rng, 5000)
    recent: list[dict] = []
    with path.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            roll = rng.random()
            if recent and roll < 0.01:
                row = rng.choice(recent)  # exact copy
            elif recent and roll < 0.03:
                old = rng.choice(recent)  # lightly edited copy: one word added at the end of the answer
                row = {**old, "output": old["output"] + rng.choice(words) + "。"}
            else:
                out_len = min(800, max(30, int(rng.lognormvariate(4.45, 0.65))))
                row = {"instruction": _text(rng, words, rng.randint(10, 60)),
                       "input": "" if rng.random() < 0.6 else _text(rng, words, rng.randint(10, 120)),
                       "output": _text(rng, words, out_len)}
            recent = (recent + [row])[-1000:] if rng.random() < 0.1 else recent or [row]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_build(data: Path, out: Path, rows: int, workers: int, seed: int, engine: str = "local") -> tuple[float, float]:
    """(seconds, peak tree RSS in MB) of one CLI build in a fresh process."""
    cmd = [sys.executable, "-m", "llamafactory_ext.build_dataset", "belle", str(data), "--name", "scale",
           "--out", str(out), "--sample", str(rows), "--seed", str(seed), "--workers", str(workers), "--quiet",
           "--engine", engine]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"build failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return seconds, peak / 1024


def same_output(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir() if not p.name.endswith(".manifest.json"))
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 40_000, 160_000, 500_000])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the parallel path (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="runs per path; the fastest is reported (shared machine)")
    p.add_argument("--datatrove", action="store_true",
                   help="also time --engine datatrove (its local executor) with --workers; rows must be the same")
    args = p.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("rows | workers | seconds | samples/s | peak RSS MB | speed-up | efficiency | identical to --workers 1")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            data = Path(tmp, f"belle_{rows}.json")
            build_file(data, rows, args.seed)
            results = {}
            paths = [(1, "local"), (args.workers, "local")] + ([(args.workers, "datatrove")] if args.datatrove else [])
            for workers, engine in paths:
                runs = []
                for _ in range(args.repeat):
                    out = Path(tmp, f"out_{rows}_{workers}_{engine}")
                    shutil.rmtree(out, ignore_errors=True)
                    runs.append(run_build(data, out, rows, workers, args.seed, engine))
                results[(workers, engine)] = min(runs)
            base = Path(tmp, f"out_{rows}_1_local")
            for (workers, engine), (sec, mb) in results.items():
                same = same_output(base, Path(tmp, f"out_{rows}_{workers}_{engine}"))
                ok &= same
                ratio = results[(1, "local")][0] / sec
                label = f"{workers}" + ("" if engine == "local" else f" ({engine})")
                print(f"{rows} | {label} | {sec:.1f} | {rows / sec:,.0f} | {mb:.0f} | {ratio:.2f}x | "
                      f"{ratio / workers:.0%} | {same}", flush=True)
            if rows >= 500_000:
                _targets(results, args.workers)
            data.unlink()
    return 0 if ok else 1


def _targets(results: dict, workers: int) -> None:
    """Issue 15's targets for the 0.5M-row build, on the parallel path."""
    sec, mb = results[(workers, "local")]
    efficiency = results[(1, "local")][0] / sec / workers
    for name, ok, figure in (("≤120 s", sec <= TARGET_SECONDS, f"{sec:.0f} s"), ("≤1 GB", mb <= TARGET_MB, f"{mb:.0f} MB"),
                             ("efficiency ≥80%", efficiency >= 0.8, f"{efficiency:.0%}")):
        print(f"target {name}: {'PASS' if ok else 'FAIL'} ({figure})")


if __name__ == "__main__":
    raise SystemExit(main())
