"""Alert rules on what the training loop really logged (RUN flow: callback events → **alerts** → live, alerts.jsonl).

Pure: a Monitor is fed one event dict at a time (the worker's callback builds them from the Trainer's `logs`, which
carry `grad_norm`, plus a wall-clock time and the current memory) and returns the alerts that event raises.
Thresholds are module constants with the reason for each value.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("nonfinite", "spike", "grad_norm", "overfit", "memory", "stall")

SPIKE_FACTOR = 3.0  # loss > 3x its moving average: far outside the step-to-step noise of a healthy SFT run
SPIKE_WINDOW = 20  # moving average over the last 20 logged losses (one logging interval each)
SPIKE_MIN_POINTS = 5  # no spike verdict before 5 points: the first steps of a run are legitimately erratic
GRAD_NORM_BOUND = 1.0e3  # pre-clip norm; healthy LoRA/full SFT stays within 0.1-100, runs that blow up pass 1e3
OVERFIT_PATIENCE = 3  # eval loss up 3 evaluations in a row, train loss down: one bad eval batch is not a trend
MEMORY_CREEP = 0.20  # current memory 20% above its level after warm-up …
MEMORY_CREEP_MIN_BYTES = 256 * 2**20  # … and by at least 256 MiB: small absolute drifts are allocator noise
MEMORY_WARMUP = 3  # memory is judged from the 3rd logged step on: optimizer states appear at the first step
STALL_FACTOR = 3.0  # a logging interval 3x slower than the median interval of the window is a stall
STALL_MIN_POINTS = 4  # median of at least 4 intervals before judging

MESSAGES: dict[str, dict[str, str]] = {
    "nonfinite": {
        "en": "step {step}: {what} — training diverged (NaN/inf). Lower learning_rate (now {lr}); with fp16 "
              "switch to bf16: true (or fp16: false); try flash_attn: sdpa or eager; resume from the last "
              "checkpoint before the NaN",
        "zh": "第 {step} 步：{what}——训练发散（NaN/inf）。请调低 learning_rate（当前 {lr}）；若用 fp16 请改为 "
              "bf16: true（或 fp16: false）；尝试 flash_attn: sdpa 或 eager；从出现 NaN 之前的检查点恢复",
    },
    "spike": {
        "en": "step {step}: loss {loss:.4g} is {ratio:.1f}x its moving average {avg:.4g} — lower learning_rate "
              "(now {lr}) or raise warmup_ratio; check the data around this step",
        "zh": "第 {step} 步：loss {loss:.4g} 是滑动平均 {avg:.4g} 的 {ratio:.1f} 倍——请调低 learning_rate"
              "（当前 {lr}）或增大 warmup_ratio；检查这一步附近的数据",
    },
    "grad_norm": {
        "en": "step {step}: grad_norm {grad_norm:.4g} above {bound:.0g} — lower learning_rate (now {lr}); keep "
              "max_grad_norm at 1.0",
        "zh": "第 {step} 步：grad_norm {grad_norm:.4g} 超过 {bound:.0g}——请调低 learning_rate（当前 {lr}）；"
              "max_grad_norm 保持 1.0",
    },
    "overfit": {
        "en": "step {step}: eval loss rose {n} evaluations in a row ({evals}) while train loss fell — "
              "overfitting; best checkpoint: {best}. Lower num_train_epochs, or set load_best_model_at_end: "
              "true with metric_for_best_model: eval_loss",
        "zh": "第 {step} 步：eval loss 连续 {n} 次上升（{evals}），train loss 仍在下降——过拟合；最佳检查点：{best}。"
              "请减少 num_train_epochs，或设置 load_best_model_at_end: true 与 metric_for_best_model: eval_loss",
    },
    "memory": {
        "en": "step {step}: current memory {now} grew from {base} (+{pct:.0f}%) — a leak or growing batches; "
              "check cutoff_len and packing, lower per_device_train_batch_size",
        "zh": "第 {step} 步：当前内存 {now}，高于预热后的 {base}（+{pct:.0f}%）——可能泄漏或批次变长；"
              "检查 cutoff_len 与 packing，调低 per_device_train_batch_size",
    },
    "stall": {
        "en": "step {step}: the last logging interval took {dt:.1f} s, {ratio:.1f}x the usual {median:.1f} s — "
              "throughput stalled (I/O, swapping, another job on the device); check dataloader_num_workers",
        "zh": "第 {step} 步：最近一个日志间隔耗时 {dt:.1f} 秒，是通常 {median:.1f} 秒的 {ratio:.1f} 倍——吞吐停滞"
              "（I/O、换页或设备上有其他任务）；检查 dataloader_num_workers",
    },
}

FILTERED = {"en": "(loss 0.0 with grad_norm nan: logging_nan_inf_filter hid a NaN loss)",
            "zh": "（loss 0.0 且 grad_norm 为 nan：logging_nan_inf_filter 隐藏了 NaN loss）"}

LF_KEYS = {"nonfinite": "learning_rate / bf16 / flash_attn", "spike": "learning_rate / warmup_ratio",
           "grad_norm": "learning_rate / max_grad_norm", "overfit": "num_train_epochs / load_best_model_at_end",
           "memory": "per_device_train_batch_size / cutoff_len", "stall": "dataloader_num_workers"}


@dataclass(frozen=True)
class Alert:
    kind: str
    step: int
    time: float
    message: str
    lf_key: str
    severity: str = "warning"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def human_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


@dataclass
class Monitor:
    """Feeds events one by one; keeps just the history the rules need."""

    lang: str = "en"
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)
    last_time: float | None = None
    fired: set[str] = field(default_factory=set)  # overfit/memory fire once per run: a state, not an event

    def feed(self, event: dict[str, Any]) -> list[Alert]:
        found: list[Alert] = []
        if "eval_loss" in event:
            found += self._overfit(event)
        if "loss" in event or "grad_norm" in event:
            found += self._nonfinite(event) or (self._spike(event) + self._grad(event))
            found += self._memory(event) + self._stall(event)
        return found

    def _alert(self, kind: str, event: dict[str, Any], severity: str = "warning", **values: Any) -> Alert:
        text = MESSAGES[kind][self.lang].format(step=event.get("step"), lr=event.get("learning_rate"), **values)
        return Alert(kind, int(event.get("step") or 0), float(event.get("time") or 0.0), text, LF_KEYS[kind],
                     severity)

    def _nonfinite(self, event: dict[str, Any]) -> list[Alert]:
        loss, grad = event.get("loss"), event.get("grad_norm")
        bad = [f"{k}={v}" for k, v in (("loss", loss), ("grad_norm", grad)) if v is not None and not _finite(v)]
        if not bad and loss == 0.0 and grad is not None and not _finite(grad):
            bad = ["loss=0.0"]
        if not bad:
            return []
        if loss == 0.0 and not _finite(grad):  # transformers' logging_nan_inf_filter hides the NaN loss as 0.0
            bad.append(FILTERED[self.lang])
        return [self._alert("nonfinite", event, "error", what=", ".join(bad))]

    def _spike(self, event: dict[str, Any]) -> list[Alert]:
        loss = event.get("loss")
        if not _finite(loss):
            return []
        window = self.losses[-SPIKE_WINDOW:]
        self.losses.append(loss)
        if len(window) < SPIKE_MIN_POINTS:
            return []
        avg = statistics.fmean(window)
        if avg > 0 and loss > SPIKE_FACTOR * avg:
            return [self._alert("spike", event, loss=loss, avg=avg, ratio=loss / avg)]
        return []

    def _grad(self, event: dict[str, Any]) -> list[Alert]:
        grad = event.get("grad_norm")
        if _finite(grad) and grad > GRAD_NORM_BOUND:
            return [self._alert("grad_norm", event, grad_norm=grad, bound=GRAD_NORM_BOUND)]
        return []

    def _overfit(self, event: dict[str, Any]) -> list[Alert]:
        self.evals.append((int(event.get("step") or 0), float(event["eval_loss"])))
        tail = [loss for _, loss in self.evals[-(OVERFIT_PATIENCE + 1):]]
        rising = len(tail) == OVERFIT_PATIENCE + 1 and all(b > a for a, b in zip(tail, tail[1:], strict=False))
        if not rising or not self._train_falling() or "overfit" in self.fired:
            return []
        self.fired.add("overfit")
        best_step, best_loss = min(self.evals, key=lambda se: se[1])
        best = event.get("best_checkpoint") or f"checkpoint-{best_step} (eval loss {best_loss:.4g})"
        return [self._alert("overfit", event, n=OVERFIT_PATIENCE, evals=" → ".join(f"{x:.4g}" for x in tail),
                            best=best)]

    def _train_falling(self) -> bool:
        half = len(self.losses) // 2
        return half >= 2 and statistics.fmean(self.losses[half:]) < statistics.fmean(self.losses[:half])

    def _memory(self, event: dict[str, Any]) -> list[Alert]:
        now = event.get("memory_current")
        if not _finite(now):
            return []
        self.memory.append(float(now))
        if len(self.memory) <= MEMORY_WARMUP or "memory" in self.fired:
            return []
        base = self.memory[MEMORY_WARMUP - 1]
        if now > base * (1 + MEMORY_CREEP) and now - base > MEMORY_CREEP_MIN_BYTES:
            self.fired.add("memory")
            return [self._alert("memory", event, now=human_bytes(now), base=human_bytes(base),
                                pct=100 * (now / base - 1))]
        return []

    def _stall(self, event: dict[str, Any]) -> list[Alert]:
        t = event.get("time")
        if not _finite(t) or event.get("after_pause"):  # eval/save between two logs is not a stall
            self.last_time = t if _finite(t) else self.last_time
            return []
        last, self.last_time = self.last_time, t
        if last is None:
            return []
        dt, window = t - last, self.intervals[-SPIKE_WINDOW:]
        self.intervals.append(dt)
        if len(window) < STALL_MIN_POINTS:
            return []
        median = statistics.median(window)
        if median > 0 and dt > STALL_FACTOR * median:
            return [self._alert("stall", event, dt=dt, median=median, ratio=dt / median)]
        return []


def parse_stop_on(text: str | None) -> frozenset[str]:
    """`--stop-on nonfinite,overfit` or `any` → the alert kinds that stop the run (ValueError naming the bad one)."""
    if not text:
        return frozenset()
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    if "any" in kinds:
        return frozenset(KINDS)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"--stop-on: unknown alert kind {', '.join(unknown)}; use any of {', '.join(KINDS)} or 'any'")
    return frozenset(kinds)
