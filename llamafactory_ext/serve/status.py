"""The status panel's numbers: per GPU name, memory, utilisation, temperature and power through NVML
(``nvidia-ml-py``) when a driver answers; CPU and RAM (psutil) otherwise. Never raises."""

from __future__ import annotations


def gpu_rows() -> list[dict]:
    """One dict per GPU, [] when NVML is missing or has no driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 — no package, no driver, no GPU: all mean "show CPU instead"
        return []
    try:
        return [_gpu(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _gpu(nv, h) -> dict:
    mem = nv.nvmlDeviceGetMemoryInfo(h)
    name = nv.nvmlDeviceGetName(h)
    return {"name": name.decode() if isinstance(name, bytes) else name, "mem_used_gib": mem.used / 2**30,
            "mem_total_gib": mem.total / 2**30, "util_pct": nv.nvmlDeviceGetUtilizationRates(h).gpu,
            "temp_c": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
            "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000}


def cpu_row() -> dict:
    import psutil

    vm = psutil.virtual_memory()
    return {"cpu_pct": psutil.cpu_percent(interval=None), "ram_used_gib": vm.used / 2**30,
            "ram_total_gib": vm.total / 2**30, "process_rss_gib": psutil.Process().memory_info().rss / 2**30}


def status_markdown(model_state: str) -> str:
    """The panel as markdown (numbers only, nothing user-supplied)."""
    gpus = gpu_rows()
    lines = [f"**模型 / models:** {model_state}"]
    for i, g in enumerate(gpus):
        lines.append(f"**GPU {i}** {g['name']} · 显存 {g['mem_used_gib']:.1f}/{g['mem_total_gib']:.1f} GiB · "
                     f"利用率 {g['util_pct']}% · {g['temp_c']} °C · {g['power_w']:.0f} W")
    if not gpus:
        c = cpu_row()
        lines.append(f"**CPU** {c['cpu_pct']:.0f}% · 内存 RAM {c['ram_used_gib']:.1f}/{c['ram_total_gib']:.1f} GiB · "
                     f"本进程 {c['process_rss_gib']:.2f} GiB (no GPU: NVML unavailable)")
    return "  \n".join(lines)
