"""The training worker (RUN flow: supervisor → **worker** → LF's run_exp with our callback → result file).

`python -m llamafactory_ext.run.worker SPEC.json` — directly, or as the torchrun entry on several GPUs. SPEC holds
the LF args, the result path and the callback options. The worker classifies how training ended (done, stopped,
out of memory, error) into the result file; the supervisor decides what happens next.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

OOM_EXIT = 75  # EX_TEMPFAIL: "try again" — the supervisor's cue to step down the OOM ladder
_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
              "std::bad_alloc")


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM, Python's MemoryError, or the CPU allocator failing (torch raises RuntimeError for that)."""
    import torch

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError | torch.OutOfMemoryError):
            return True
        if isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def limit_memory(budget_gb: float | None) -> None:
    """Cap what the worker may still allocate: RLIMIT_AS on CPU, torch's memory fraction on a GPU."""
    if not budget_gb:
        return
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget_gb * 2**30 / total))
        return
    # After torch and LF are imported, so the budget is what training adds, not the libraries' mappings.
    limit = _vm_size() + int(budget_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _install_sigint(callback: Any) -> None:
    def handler(signum, frame):
        callback.stop_reason = "interrupted (Ctrl-C)"
        print("[lfx] Ctrl-C: finishing this step, then saving a checkpoint (Ctrl-C again aborts)", flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)


def _result(spec: dict[str, Any], row: dict[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        Path(spec["result"]).write_text(json.dumps(row), encoding="utf-8")


def run(spec: dict[str, Any]) -> int:
    from llamafactory.train.tuner import run_exp

    from .alerts import parse_stop_on
    from .callbacks import SupervisorCallback

    callback = SupervisorCallback(spec["args"]["output_dir"], spec.get("lang", "en"),
                                  parse_stop_on(spec.get("stop_on")), spec.get("attempt", 1))
    _install_sigint(callback)
    limit_memory(spec.get("memory_budget_gb"))
    try:
        run_exp(dict(spec["args"]), callbacks=[callback])
    except BaseException as exc:  # classify every ending; the supervisor needs to know which one it was
        oom = not isinstance(exc, KeyboardInterrupt) and is_oom(exc)
        status = "oom" if oom else "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        traceback.print_exc()
        _result(spec, {"status": status, "message": f"{type(exc).__name__}: {str(exc)[:2000]}"})
        return OOM_EXIT if oom else 1
    stopped = callback.stopped
    if stopped:  # a Ctrl-C stop is "interrupted" (exit 130), an alert's stop is "stopped" (exit 3)
        status = "interrupted" if stopped["reason"].startswith("interrupted") else "stopped"
        _result(spec, {"status": status, **stopped})
    else:
        _result(spec, {"status": "done"})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    return run(spec)


if __name__ == "__main__":
    raise SystemExit(main())
