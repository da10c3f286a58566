"""build_recipe against hostile input: every case ends in a located message with the fix (file:line, option or key),
the right exit code (1 data, 2 usage), no traceback, and the recipes and dataset folders byte-identical."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llamafactory_ext.build_recipe import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"model_type": "qwen2", "num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 512,
          "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 4096}


@pytest.fixture
def data(tmp_path) -> Path:
    """The committed crypto dataset, copied: the user's working dataset_info/ is never touched."""
    folder = tmp_path / "dataset_info"
    folder.mkdir()
    for p in (ROOT / "dataset_info").iterdir():
        if p.name.startswith("crypto") or p.name == "dataset_info.json":
            (folder / p.name).write_bytes(p.read_bytes())
    return folder


def tree(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for f in folders if f.exists() for p in sorted(f.rglob("*"))}


def model_dir(tmp_path: Path, name: str = "m", config: dict | bytes | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    raw = config if isinstance(config, bytes) else json.dumps(config or CONFIG).encode()
    (folder / "config.json").write_bytes(raw)
    return folder


def edit_info(data: Path, change: Callable[[dict], None]) -> None:
    info = json.loads((data / "dataset_info.json").read_text())
    change(info)
    (data / "dataset_info.json").write_text(json.dumps(info))


def set_line(path: Path, number: int, raw: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = raw + b"\n"
    path.write_bytes(b"".join(lines))


def manifest(data: Path, change: Callable[[dict], None]) -> None:
    path = data / "crypto.manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def deep(n: int) -> bytes:
    return b'{"a": ' * n + b"1" + b"}" * n


# (id, setup(data, tmp) -> extra args, exit code, parts the message must hold)
CASES = [
    ("no-entry", lambda d, t: edit_info(d, lambda i: i.pop("crypto_train")), 1, ["dataset_info.json", "crypto_train",
                                                                              "build_dataset"]),
    ("file-missing", lambda d, t: (d / "crypto_train.jsonl").unlink(), 1, ["crypto_train.jsonl", "missing",
                                                                           "rebuild"]),
    ("val-file-missing", lambda d, t: (d / "crypto_val.jsonl").unlink(), 1, ["crypto_val.jsonl", "missing"]),
    ("index-missing", lambda d, t: (d / "dataset_info.json").unlink(), 1, ["dataset_info.json", "build the dataset"]),
    ("index-malformed", lambda d, t: (d / "dataset_info.json").write_text('{"crypto_train": \n  {"file_name": }'),
     1, ["dataset_info.json:2", "malformed JSON"]),
    ("entry-outside", lambda d, t: edit_info(d, lambda i: i["crypto_train"].update(file_name="../../etc/passwd")),
     1, ["points outside the folder", "inside the dataset folder"]),
    ("row-not-json", lambda d, t: set_line(d / "crypto_train.jsonl", 3, b'{"messages": [oops'), 1,
     ["crypto_train.jsonl:3", "not JSON", "rebuild"]),
    ("row-not-utf8", lambda d, t: set_line(d / "crypto_train.jsonl", 2, b'{"x": "\xff\xfe"}'), 1,
     ["crypto_train.jsonl:2", "not UTF-8"]),
    ("row-a-list", lambda d, t: set_line(d / "crypto_train.jsonl", 1, b"[1, 2]"), 1,
     ["crypto_train.jsonl:1", "not an object"]),
    ("row-bad-content", lambda d, t: set_line(d / "crypto_train.jsonl", 4, b'{"messages": [{"role": "user", '
                                                                          b'"content": 5}]}'), 1,
     ["crypto_train.jsonl:4", "wrong shape"]),
    ("row-deep", lambda d, t: set_line(d / "crypto_train.jsonl", 5, deep(10_000)), 1,
     ["crypto_train.jsonl:5", "nested too deeply"]),
    ("manifest-types", lambda d, t: manifest(d, lambda m: m.update(splits=[1, 2])), 1,
     ["crypto.manifest.json", "rebuild"]),
    ("manifest-not-utf8", lambda d, t: (d / "crypto.manifest.json").write_bytes(b'{"splits": "\xff"}'), 1,
     ["crypto.manifest.json"]),
    ("gpu-999", lambda d, t: ["--gpu", "999xH100"], 2, ["999", "not plausible", "1 to 16"]),
    ("gpus-0-of-a-card", lambda d, t: ["--gpu", "0xA100"], 2, ["1 to 16"]),
    ("vram-inf", lambda d, t: ["--gpu", None, "--vram-gb", "inf"], 2, ["--vram-gb", "1 to 1024"]),
    ("vram-nan", lambda d, t: ["--gpu", None, "--vram-gb", "nan"], 2, ["--vram-gb"]),
    ("effective-batch-0", lambda d, t: ["--effective-batch", "0"], 2, ["--effective-batch 0", "1 to"]),
    ("effective-batch-negative", lambda d, t: ["--effective-batch", "-4"], 2, ["--effective-batch -4"]),
    ("lr-inf", lambda d, t: ["--set", "learning_rate=.inf"], 2, ["learning_rate", "finite"]),
    ("lr-nan", lambda d, t: ["--set", "learning_rate=nan"], 2, ["learning_rate", "finite"]),
    ("lr-huge", lambda d, t: ["--set", "learning_rate=3"], 2, ["learning_rate", "less than 1"]),
    ("epochs-huge", lambda d, t: ["--set", "num_train_epochs=1e9"], 2, ["num_train_epochs"]),
    ("stem-climbs", lambda d, t: ["--stem", "../../x"], 2, ["--stem", "no '/'"]),
    ("stem-newline", lambda d, t: ["--stem", "a\nresume_from_checkpoint: x"], 2, ["--stem", "control"]),
    ("dataset-climbs", lambda d, t: ["--dataset", "../crypto"], 2, ["--dataset", "letters, digits"]),
    ("out-newline", lambda d, t: ["--out", str(t / "r\nresume_from_checkpoint: x")], 2, ["--out", "control"]),
    ("saves-climbs", lambda d, t: ["--saves", "../../elsewhere"], 2, ["--saves", "'..'"]),
    ("saves-space", lambda d, t: ["--saves", "my saves"], 2, ["--saves", "spaces"]),
    ("set-newline", lambda d, t: ["--set", "default_system=a\nb"], 2, ["--set", "control"]),
    ("model-folder-newline", lambda d, t: ["--model-path", str(model_dir(t, "m\nresume_from_checkpoint: x")),
                                           "--template", "qwen"], 2, ["--model-path", "control"]),
    ("config-string-width", lambda d, t: ["--model-path", str(model_dir(t, config={**CONFIG, "hidden_size": "big"})),
                                          "--template", "qwen"], 1, ["config.json", "hidden_size", "positive integer"]),
    ("config-zero-kv-heads", lambda d, t: ["--model-path", str(model_dir(t, config={**CONFIG,
                                                                                    "num_key_value_heads": 0})),
                                           "--template", "qwen"], 1, ["num_key_value_heads"]),
    ("config-huge-layers", lambda d, t: ["--model-path", str(model_dir(t, config={**CONFIG,
                                                                                  "num_hidden_layers": 10**12})),
                                         "--template", "qwen"], 1, ["num_hidden_layers", "10,000,000"]),
    ("config-not-utf8", lambda d, t: ["--model-path", str(model_dir(t, config=b'{"model_type": "\xff"}')),
                                      "--template", "qwen"], 1, ["config.json", "not UTF-8"]),
    ("config-deep", lambda d, t: ["--model-path", str(model_dir(t, config=deep(10_000))), "--template", "qwen"], 1,
     ["config.json", "nested too deeply"]),
    ("config-a-list", lambda d, t: ["--model-path", str(model_dir(t, config=b"[1]")), "--template", "qwen"], 1,
     ["config.json", "not a JSON object"]),
    ("packing-8192-on-8gb", lambda d, t: ["--gpu", "1x8GB", "--set", "cutoff_len=8192", "packing=true"], 2,
     ["does not fit", "--force"]),
    ("gemma-on-t4", lambda d, t: ["--model", "gemma-3-4b-it", "--gpu", "T4", "--dataset", "crypto"], 2,
     ["overflow fp16", "--gpu L4"]),
]


def run(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


@pytest.mark.parametrize("case,setup,code,parts", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_with_a_located_fix_and_changes_nothing(case, setup, code, parts, data, tmp_path,
                                                                         capsys):
    out = tmp_path / "recipes"
    out.mkdir()
    (out / "keep.yaml").write_text("user: file\n")
    extra = setup(data, tmp_path)
    extra = extra if isinstance(extra, list) else []
    args = ["--dataset-dir", data, "--out", out, "--gpu", "1x24GB", *extra]
    if None in args:  # a case that describes the GPU another way drops the default --gpu
        i = args.index(None)
        del args[i - 1: i + 1]
        args = [a for a in args if a is not None]
        args.remove("--gpu"), args.remove("1x24GB")
    before = tree(out, data)
    got, text = run(capsys, args)
    assert got == code, text
    assert "Traceback" not in text and "internal error" not in text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert tree(out, data) == before
    assert not list(tmp_path.rglob(".lfx-*")) and not list(tmp_path.rglob("*.tmp"))


def test_a_recipe_file_of_another_dataset_is_not_replaced_without_overwrite(data, tmp_path, capsys):
    out = tmp_path / "recipes"
    out.mkdir()
    (out / "qwen3_thinking_lora.yaml").write_text("dataset: belle_train\n")
    before = tree(out, data)
    code, text = run(capsys, ["--dataset-dir", data, "--out", out, "--gpu", "1x24GB"])
    assert code == 2 and "belle_train" in text and "--stem" in text and tree(out, data) == before
    assert run(capsys, ["--dataset-dir", data, "--out", out, "--gpu", "1x24GB", "--overwrite"])[0] == 0


def test_an_output_dir_holding_a_finished_run_is_refused(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = tmp_path / "saves" / "qwen3_thinking_lora" / "crypto" / "sft"
    done.mkdir(parents=True)
    (done / "adapter_model.safetensors").write_bytes(b"weights")
    code, text = run(capsys, ["--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB"])
    assert code == 2 and "finished run" in text and "--overwrite" in text and not (tmp_path / "r").exists()
    code, _ = run(capsys, ["--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB", "--overwrite"])
    assert code == 0 and "overwrite_output_dir: true" in (tmp_path / "r" / "qwen3_thinking_lora.yaml").read_text()


def test_cpu_is_planned_not_refused_and_names_no_gpu_machine(data, tmp_path, capsys):
    code, text = run(capsys, ["--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "cpu"])
    assert code == 0, text
    assert "CPU dry run" in text and "max_steps: 2" in (tmp_path / "r" / "qwen3_thinking_lora.yaml").read_text()


def test_a_plan_for_a_described_gpu_says_where_the_commands_run(data, tmp_path, capsys):
    code, text = run(capsys, ["--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "2xL4"])
    assert code == 0 and "on the machine with the 2x L4" in text
