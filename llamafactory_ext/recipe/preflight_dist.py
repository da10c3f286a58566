"""Checks one node makes before a multi-process / multi-node launch (run by the scripts launch.py writes).

RUN flow: launch script → ``python -m llamafactory_ext.recipe.preflight_dist RECIPE --planned-world N --nnodes N
--nproc-per-node N`` → stderr: a version fingerprint to compare across nodes, world size against the plan, the
accumulation that keeps the planned global batch, a warning when output_dir looks local on a multi-node run;
stdout: the LF override (``gradient_accumulation_steps=K``) the script appends to ``llamafactory-cli train``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import RecipeError, UsageError, exit_code

PACKAGES = ("llamafactory", "torch", "transformers", "peft", "accelerate", "deepspeed", "datasets", "bitsandbytes")
# Filesystems every node can see: network, parallel and cluster filesystems (fuse covers s3fs/gcsfuse/juicefs).
SHARED_FS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "cephfs", "glusterfs", "fuse",
             "9p", "wekafs", "orangefs", "virtiofs")

CPU_RESUME = ("on CPU a multi-process run trains, but cannot resume from a checkpoint: transformers' Trainer loads "
              "optimizer.pt with map_location=args.device, accelerate's torch.device('cpu', 0), which torch.load "
              "rejects — resume CPU runs with one process (NPROC_PER_NODE=1, NNODES=1) or under DeepSpeed "
              "(--parallel zero2), which restores its own optimizer shards")


def fingerprint(versions: dict[str, str | None]) -> str:
    """A short hash of the versions: equal on every node, or the nodes run different code."""
    text = ";".join(f"{k}={versions[k]}" for k in sorted(versions))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def installed_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None: absent), plus Python and torch's CUDA / NCCL builds."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out |= _torch_builds()
    return out


def _torch_builds() -> dict[str, str | None]:
    try:
        import torch
    except ImportError:
        return {}
    nccl = None
    if torch.cuda.is_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    return {"cuda": torch.version.cuda, "nccl": nccl}


@dataclass(frozen=True)
class Batch:
    accum: int
    global_batch: int
    note: str | None


def accumulation(micro: int, planned_accum: int, planned_world: int, world: int) -> Batch:
    """Gradient accumulation that keeps the planned global batch (micro x accum x world) on ``world`` processes;
    the nearest achievable global batch, with a note, when the new world size does not divide it."""
    if min(micro, planned_accum, planned_world, world) < 1:
        raise UsageError(f"batch sizes and world sizes must be >= 1 (micro {micro}, accumulation {planned_accum}, "
                         f"planned world {planned_world}, world {world})")
    target = micro * planned_accum * planned_world
    accum = max(1, round(target / (micro * world)))
    actual = micro * accum * world
    note = None
    if actual != target:
        note = (f"global batch {actual} instead of the planned {target}: {world} processes x micro-batch {micro} do "
                f"not divide it; set learning_rate for {actual}, or use a world size that divides {target // micro}")
    return Batch(accum, actual, note)


def world_problems(planned: int, nnodes: int, nproc: int, visible: int | None) -> list[str]:
    """Hard problems (the launch would fail or hang) of this node's world against its devices."""
    out = []
    if visible is not None and visible > 0 and nproc > visible:
        out.append(f"NPROC_PER_NODE={nproc} but this node sees {visible} GPU(s): set NPROC_PER_NODE={visible} "
                   "or CUDA_VISIBLE_DEVICES")
    if nnodes < 1 or nproc < 1:
        out.append(f"NNODES={nnodes}, NPROC_PER_NODE={nproc}: both must be >= 1")
    return out


def mount_of(path: str, mounts_text: str) -> tuple[str, str]:
    """(mount point, filesystem type) holding ``path``, from /proc/mounts text: the longest matching mount point."""
    best = ("/", "unknown")
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def storage_warning(output_dir: str, nnodes: int, mounts_text: str) -> str | None:
    """A warning when a multi-node run checkpoints to a filesystem only this node sees: HF saves on every node's
    local rank 0 but resume needs the newest checkpoint everywhere."""
    if nnodes < 2:
        return None
    point, fstype = mount_of(os.path.abspath(output_dir), mounts_text)
    if fstype.split(".")[0] in SHARED_FS:
        return None
    return (f"output_dir {output_dir} is on {point} ({fstype}), which looks local to this node: on {nnodes} nodes, "
            "put it on shared storage (NFS, Lustre, …) mounted at the same path everywhere, or a restarted job "
            "cannot resume from the same checkpoint on every node")


def _recipe(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise UsageError(f"{path}: no such recipe — pass the train recipe the launch script names")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: not a YAML mapping of LF keys")
    return data


def _visible_gpus() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def report(args: argparse.Namespace, mounts_text: str) -> tuple[list[str], Batch]:
    """The lines to print and the accumulation to use; a UsageError on a problem that would fail the launch."""
    rec = _recipe(Path(args.recipe))
    world = args.nnodes * args.nproc_per_node
    visible = _visible_gpus()
    problems = world_problems(args.planned_world, args.nnodes, args.nproc_per_node, visible)
    if problems:
        raise UsageError("; ".join(problems))
    versions = installed_versions()
    lines = [f"preflight: fingerprint {fingerprint(versions)} — compare it across nodes; versions: "
             + ", ".join(f"{k} {v}" for k, v in versions.items() if v)]
    batch = accumulation(int(rec.get("per_device_train_batch_size", 1)), int(rec.get("gradient_accumulation_steps", 1)),
                         args.planned_world, world)
    lines.append(f"preflight: world size {world} ({args.nnodes} node(s) x {args.nproc_per_node}); planned "
                 f"{args.planned_world}; gradient_accumulation_steps {batch.accum} for a global batch of "
                 f"{batch.global_batch}")
    cpu_resume = CPU_RESUME if visible == 0 and world > 1 and not rec.get("deepspeed") else None
    lines += [f"preflight: warning: {w}" for w in (batch.note, storage_warning(
        str(rec.get("output_dir", ".")), args.nnodes, mounts_text), cpu_resume) if w]
    return lines, batch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.recipe.preflight_dist",
                                description="Checks before a distributed LF launch; prints the batch override.")
    p.add_argument("recipe", help="the train recipe YAML")
    p.add_argument("--planned-world", type=int, required=True, help="processes the recipe was planned for")
    p.add_argument("--nnodes", type=int, default=int(os.environ.get("NNODES", "1")))
    p.add_argument("--nproc-per-node", type=int, default=int(os.environ.get("NPROC_PER_NODE", "1")))
    p.add_argument("--mounts", default="/proc/mounts", help="mount table to judge output_dir (default /proc/mounts)")
    args = p.parse_args(argv)

    def run() -> int:
        mounts = Path(args.mounts).read_text(encoding="utf-8") if Path(args.mounts).is_file() else ""
        lines, batch = report(args, mounts)
        print("\n".join(lines), file=sys.stderr)
        print(f"gradient_accumulation_steps={batch.accum}")
        return 0

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
