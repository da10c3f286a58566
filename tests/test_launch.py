"""Launch artefacts and pre-launch checks: every script is valid bash, speaks the environment LF 0.9.5's launcher
reads, FSDP lines parse with accelerate's own launch parser, the Ray recipe parses with LF's own parser, and the
pre-flight keeps the global batch when the node count changes."""

from __future__ import annotations

import inspect
import re
import shlex
import subprocess

import pytest
import yaml

from llamafactory_ext.recipe import preflight_dist as P
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.launch import artefacts, ray_recipe_keys

RECIPE = "recipes/qwen3_full.yaml"
RECIPE_TEXT = "### model\nmodel_name_or_path: Qwen/Qwen3-4B\nstage: sft\noutput_dir: saves/q/sft\n"


def files_for(strategy: str, spec: str = "8xH100", nodes: int = 2) -> dict[str, str]:
    return artefacts(RECIPE, strategy, describe(spec, nodes=nodes), recipe_text=RECIPE_TEXT)


def lf_launcher_env() -> set[str]:
    from llamafactory import launcher

    return set(re.findall(r"os\.getenv\(\"([A-Z_]+)\"", inspect.getsource(launcher)))


@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3-offload", "fsdp", "megatron"])
def test_every_script_is_valid_bash(strategy, tmp_path):
    for name, text in files_for(strategy).items():
        if name.endswith((".sh", ".sbatch")):
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert proc.returncode == 0, (name, proc.stderr)
            assert text.startswith("#!/usr/bin/env bash")


def test_node_and_elastic_scripts_use_exactly_the_variables_lfs_launcher_reads():
    lf_env = lf_launcher_env()
    out = files_for("zero2")
    node, elastic = out["qwen3_full_launch.sh"], out["qwen3_full_launch_elastic.sh"]
    for var in ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        assert var in lf_env and f"export {var}=" in node, var
    for var in ("RDZV_ID", "MAX_RESTARTS", "MIN_NNODES", "MAX_NNODES"):
        assert var in lf_env and f"export {var}=" in elastic, var
    assert 'NPROC_PER_NODE="${NPROC_PER_NODE:-8}"' in node and 'NNODES="${NNODES:-2}"' in node
    assert "MASTER_ADDR:?" in node  # several nodes: no loopback default that would hang the other nodes
    assert f"FORCE_TORCHRUN=1 llamafactory-cli train {RECIPE} $OVERRIDES" in node
    assert "NCCL_SOCKET_IFNAME" in node and "ip -o route get" in node  # documented, not set
    assert not re.search(r"^export NCCL_SOCKET_IFNAME", node, re.M)
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in elastic and "NODE_RANK" not in elastic.split("set -e")[1]


def test_one_node_defaults_to_loopback_and_cpu_to_one_process():
    node = artefacts(RECIPE, "ddp", describe("cpu"))["qwen3_full_launch.sh"]
    assert 'MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"' in node and 'NPROC_PER_NODE="${NPROC_PER_NODE:-1}"' in node


def test_fsdp_line_parses_with_accelerates_launch_parser():
    from accelerate.commands.launch import launch_command_parser

    line = next(ln for ln in files_for("fsdp")["qwen3_full_launch.sh"].splitlines() if ln.startswith("accelerate"))
    env = {"$NNODES": "2", "$NODE_RANK": "1", "$MASTER_ADDR": "10.0.0.1", "$MASTER_PORT": "29500",
           "$((NNODES * NPROC_PER_NODE))": "16", "$OVERRIDES": "gradient_accumulation_steps=2"}
    for k, v in env.items():
        line = line.replace(f'"{k}"', v).replace(k, v)
    args = launch_command_parser().parse_args(shlex.split(line)[2:])
    assert (args.num_machines, args.machine_rank, args.num_processes) == (2, 1, 16)
    assert args.config_file == "recipes/accelerate/fsdp_config.yaml" and args.module
    assert args.training_script == "llamafactory.launcher" and args.training_script_args[0] == RECIPE


def test_megatron_forces_mca_and_fsdp_has_no_ray_variant():
    assert "USE_MCA=1 llamafactory-cli train" in files_for("megatron")["qwen3_full_launch.sh"]
    assert "qwen3_full_ray.yaml" not in files_for("fsdp") and "qwen3_full_ray.yaml" in files_for("ddp")


def test_sbatch_runs_the_node_script_once_per_node():
    text = files_for("zero3", "4xA100-80GB", nodes=3)["qwen3_full.sbatch"]
    assert "#SBATCH --nodes=3" in text and "#SBATCH --gpus-per-node=4" in text
    assert "#SBATCH --ntasks-per-node=1" in text and 'head -n 1)"' in text
    assert "NODE_RANK=$SLURM_NODEID bash recipes/qwen3_full_launch.sh" in text and "--kill-on-bad-exit=1" in text


def test_ray_script_documents_lfs_fixed_resources():
    out = files_for("ddp")
    assert "USE_RAY=1 llamafactory-cli train recipes/qwen3_full_ray.yaml" in out["qwen3_full_ray.sh"]
    assert "{CPU: 10, GPU: 1}" in out["qwen3_full_ray.sh"]
    data = yaml.safe_load(out["qwen3_full_ray.yaml"])
    assert data["ray_num_workers"] == 16 and data["model_name_or_path"] == "Qwen/Qwen3-4B"


@pytest.mark.lf
def test_ray_recipe_keys_parse_with_lfs_parser_and_old_storage_key_is_refused():
    from llamafactory.hparams import get_ray_args
    from llamafactory.hparams.parser import HfArgumentParser, TrainingArguments

    keys = ray_recipe_keys(describe("4xH100", nodes=2))
    ray = get_ray_args(dict(keys))
    assert ray.ray_num_workers == 8 and ray.ray_init_kwargs == {"address": "auto"}
    (train,) = HfArgumentParser(TrainingArguments).parse_dict({"output_dir": "x", **keys})
    assert train.ray_num_workers == 8
    with pytest.raises(ValueError, match="ray_storage_path"):  # earlier LF versions had it; 0.9.5 does not
        HfArgumentParser(TrainingArguments).parse_dict({"output_dir": "x", **keys, "ray_storage_path": "/s"})


# ---- preflight_dist ----------------------------------------------------------------------------------------------


def test_accumulation_keeps_the_global_batch_when_nodes_change():
    planned = P.accumulation(micro=2, planned_accum=4, planned_world=8, world=8)
    assert (planned.accum, planned.global_batch, planned.note) == (4, 64, None)
    assert P.accumulation(2, 4, 8, 16).accum == 2 and P.accumulation(2, 4, 8, 16).global_batch == 64
    assert P.accumulation(2, 4, 8, 1).accum == 32
    odd = P.accumulation(2, 4, 8, 3)
    assert odd.global_batch == 66 and "instead of the planned 64" in odd.note
    with pytest.raises(P.UsageError):
        P.accumulation(0, 4, 8, 8)


MOUNTS = """\
/dev/nvme0n1p1 / ext4 rw 0 0
nfs01:/export/shared /mnt/shared nfs4 rw 0 0
/dev/sdb1 /mnt/shared/local ext4 rw 0 0
"""


def test_storage_warning_for_local_output_dirs_on_several_nodes():
    assert P.mount_of("/mnt/shared/run/sft", MOUNTS) == ("/mnt/shared", "nfs4")
    assert P.mount_of("/mnt/shared/local/x", MOUNTS) == ("/mnt/shared/local", "ext4")
    assert P.storage_warning("/mnt/shared/run", 2, MOUNTS) is None
    assert "looks local" in P.storage_warning("/home/u/saves", 2, MOUNTS)
    assert P.storage_warning("/home/u/saves", 1, MOUNTS) is None


def test_fingerprint_changes_with_any_version_and_world_problems_are_named():
    base = {"torch": "2.9.1", "llamafactory": "0.9.5", "deepspeed": None}
    assert P.fingerprint(base) == P.fingerprint(dict(reversed(base.items())))
    assert P.fingerprint(base) != P.fingerprint(base | {"deepspeed": "0.16.9"})
    assert "set NPROC_PER_NODE=4" in P.world_problems(8, 1, 8, 4)[0]
    assert P.world_problems(8, 1, 8, 8) == [] and P.world_problems(1, 1, 2, 0) == []


def test_preflight_cli_prints_the_override_and_the_report(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("per_device_train_batch_size: 2\ngradient_accumulation_steps: 4\noutput_dir: saves/x\n")
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n")
    assert P.main([str(recipe), "--planned-world", "8", "--nnodes", "2", "--nproc-per-node", "8",
                   "--mounts", str(mounts)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "gradient_accumulation_steps=2"
    assert re.search(r"fingerprint [0-9a-f]{12}", err) and "global batch of 64" in err and "looks local" in err
    assert "torch.load" in err  # this CPU machine: multi-process DDP cannot reload optimizer.pt
    recipe.write_text(recipe.read_text() + "deepspeed: recipes/deepspeed/ds_z2_config.json\n")
    assert P.main([str(recipe), "--planned-world", "8", "--nnodes", "2", "--nproc-per-node", "8"]) == 0
    assert "torch.load" not in capsys.readouterr().err  # DeepSpeed restores its own optimizer shards
    assert P.main([str(tmp_path / "missing.yaml"), "--planned-world", "1"]) == 2
    assert "no such recipe" in capsys.readouterr().err
