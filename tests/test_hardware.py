"""Hardware as data: describe() parses what users write, probe() never fails on a machine without a GPU."""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from llamafactory_ext.errors import UsageError
from llamafactory_ext.recipe import hardware
from llamafactory_ext.recipe.hardware import Gpu, Hardware, describe, from_nvidia_smi, probe


@pytest.mark.parametrize(
    ("spec", "gpus", "name", "vram", "cc", "bf16", "assumed"),
    [
        ("1x8GB", 1, "GPU 8GB", 8, (7, 5), False, True),  # small unnamed: assumed pre-Ampere (fp16)
        ("16GB", 1, "GPU 16GB", 16, (7, 5), False, True),
        ("2xA100-80GB", 2, "A100", 80, (8, 0), True, False),
        ("4x4090", 4, "RTX 4090", 24, (8, 9), True, False),
        ("A100-40GB", 1, "A100", 39.6, (8, 0), True, False),
        ("A100", 1, "A100", 39.6, (8, 0), True, True),  # two sizes: the smaller is assumed, and said
        ("h100", 1, "H100", 79.6, (9, 0), True, True),
        ("H200", 1, "H200", 140.4, (9, 0), True, False),
        ("2xV100-32GB", 2, "V100", 31.7, (7, 0), False, False),
        ("T4", 1, "T4", 15.0, (7, 5), False, False),  # what nvidia-smi reports, not the 16 sold
        ("2 x Tesla T4", 2, "T4", 15.0, (7, 5), False, False),
        ("NVIDIA GeForce RTX 3090", 1, "RTX 3090", 24, (8, 6), True, False),
        ("rtx 2080 ti", 1, "RTX 2080 Ti", 11, (7, 5), False, False),
        ("3060", 1, "RTX 3060", 12, (8, 6), True, False),
        ("4060Ti-16GB", 1, "RTX 4060 Ti", 16, (8, 9), True, False),
        ("A10G", 1, "A10G", 22.5, (8, 6), True, False),
        ("a10", 1, "A10", 22.5, (8, 6), True, False),
        ("L4", 1, "L4", 22.5, (8, 9), True, False),
        ("8xL40S", 8, "L40S", 45.0, (8, 9), True, False),
        ("8xA800-80GB", 8, "A800", 80, (8, 0), True, False),
        ("H800", 1, "H800", 79.6, (9, 0), True, False),
        ("4×24GB", 4, "GPU 24GB", 24, (8, 0), True, True),
        ("A100 80G", 1, "A100", 80, (8, 0), True, False),
    ],
)
def test_describe_specs(spec, gpus, name, vram, cc, bf16, assumed):
    hw = describe(spec)
    assert (hw.gpus, hw.gpu.name, hw.gpu.vram_gib, hw.gpu.compute_capability, hw.supports_bf16) == (
        gpus, name, vram, cc, bf16)
    assert hw.source == "described" and hw.gpu.count == gpus
    assert bool(hw.notes) == assumed


def test_unknown_card_assumption_is_written_down():
    (note,) = describe("24GB").notes
    assert "Ampere" in note and "bf16" in note
    (note,) = describe("16GB").notes  # a 16 GB card may well be a T4 or V100: not assumed to have bf16
    assert "pre-Ampere" in note and "fp16" in note


def test_keywords_build_the_same_as_a_spec():
    assert describe(vram_gb=24, gpus=2) == describe("2x24GB")
    assert describe(vram_gb=8) == describe("1x8GB")
    assert describe("A100", vram_gb=80, gpus=2) == describe("2xA100-80GB")
    assert describe("T4", gpus=2) == describe("2xT4")


def test_cpu():
    for hw in (describe("cpu"), describe(gpus=0)):
        assert not hw.has_gpu and hw.gpus == 0 and hw.total_vram_gib == 0 and not hw.supports_bf16


def test_nodes_multiply_world_size_and_vram():
    hw = describe("8xH100-80GB", nodes=2)
    assert (hw.world_size, hw.total_vram_gib) == (16, 16 * 79.6)


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("A1000", {}, "Did you mean: A100"),
        ("rtx 4900", {}, "RTX 4090"),
        ("banana", {}, "Examples: 1x8GB"),
        ("0xA100", {}, "give 1 to 16 GPUs per node"),
        ("999xH100", {}, "not plausible"),
        ("nanGB", {}, "Examples"),
        ("A100-48GB", {}, "40 or 80 GB"),
        ("8000GB", {}, "not plausible"),
        ("2xA100", {"gpus": 4}, "give it once"),
        ("A100-80GB", {"vram_gb": 40}, "give it once"),
        (None, {}, "Examples"),
        ("T4", {"nodes": 0}, "give 1 to 1024 nodes"),
        (None, {"vram_gb": float("inf")}, "not plausible"),
        (None, {"vram_gb": float("nan")}, "not plausible"),
    ],
)
def test_bad_specs_explain_the_fix(spec, kwargs, message):
    with pytest.raises(UsageError, match=message):
        describe(spec, **kwargs)


@pytest.mark.parametrize(
    ("output", "gpus", "name", "vram", "cc", "notes"),
    [
        ("NVIDIA A100-SXM4-80GB, 81920 MiB, 8.0\n", 1, "NVIDIA A100-SXM4-80GB", 80.0, (8, 0), 0),
        ("Tesla T4, 15360 MiB, 7.5\nTesla T4, 15360 MiB, 7.5\n", 2, "Tesla T4", 15.0, (7, 5), 0),
        # mixed cards: plan for the smallest one, and say so
        ("NVIDIA GeForce RTX 4090, 24564 MiB, 8.9\nNVIDIA GeForce RTX 3060, 12288 MiB, 8.6\n",
         2, "NVIDIA GeForce RTX 3060", 12.0, (8, 6), 1),
        # old driver without compute_cap: taken from the card table
        ("Tesla V100-SXM2-32GB, 32768 MiB\n", 1, "Tesla V100-SXM2-32GB", 32.0, (7, 0), 1),
        ("NVIDIA H100 80GB HBM3, 81559 MiB, [N/A]\n", 1, "NVIDIA H100 80GB HBM3", 79.6, (9, 0), 1),
    ],
)
def test_nvidia_smi_output(output, gpus, name, vram, cc, notes):
    hw = from_nvidia_smi(output)
    assert (hw.gpus, hw.gpu.name, hw.gpu.vram_gib, hw.gpu.compute_capability, len(hw.notes)) == (
        gpus, name, vram, cc, notes)
    assert hw.source == "probe" and hw.supports_bf16 == (cc >= (8, 0))


def test_empty_nvidia_smi_output_is_cpu_only():
    assert not from_nvidia_smi("\n").has_gpu


def test_numeric_cuda_visible_devices_is_honoured(monkeypatch):
    rows = [("A", 10.0, (8, 0)), ("B", 20.0, (8, 0)), ("C", 30.0, (8, 0))]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert hardware._visible(rows) == [rows[2], rows[0]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert hardware._visible(rows) == []


def test_probe_on_this_machine_does_not_raise():
    import torch

    hw = probe()
    assert hw.source == "probe"
    if torch.cuda.is_available():
        assert hw.gpus == torch.cuda.device_count() and hw.gpu.vram_gib > 0
    elif shutil.which("nvidia-smi") is None:
        assert hw.gpus == 0 and hw.gpu is None and not hw.has_gpu


def test_models_are_strict_and_frozen():
    gpu = Gpu(name="X", vram_gib=24, compute_capability=(8, 6))
    assert gpu.bf16  # derived from the compute capability
    assert not Gpu(name="X", vram_gib=24, compute_capability=(8, 6), bf16=False).bf16
    with pytest.raises(ValidationError):
        Hardware(gpus=1, gpu=None, source="described")
    with pytest.raises(ValidationError):
        Hardware(gpus=2, gpu=gpu, source="described")  # gpu.count says 1
    with pytest.raises(ValidationError):
        Hardware(gpus=0, gpu=None, source="described", vram=8)
    with pytest.raises(ValidationError):
        describe("T4").gpus = 2
