"""Planned recipes run as written: build_dataset → build_recipe → the real `llamafactory-cli` on CPU, tiny models.

Only what the CPU forces is overridden (model path, step counts, bf16, liger, 4-bit); everything else — template,
enable_thinking, LoRA setup, cutoff, paths — is what a user gets from the planner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llamafactory_ext.build_dataset import main as build_dataset
from llamafactory_ext.build_recipe import main as build_recipe

pytestmark = [pytest.mark.lf, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
CRYPTO_NOTES = REPO / "examples" / "crypto_notes"

# What CPU forces, on top of the model path and step counts:
CPU_SETS = [
    "bf16=false",  # the plan targets an Ampere-class GPU; the tiny models are float32 and CPU trains in fp32
    "enable_liger_kernel=false",  # Liger's fused kernels are Triton/CUDA code (`gpu` extra, not installed here)
]
STEPS = ["max_steps=2"]
# Predict: a few rows and a few generated tokens keep the run short; the planned 4096 tokens are for real reasoning.
SHORT = ["max_samples=4", "max_new_tokens=8"]


def flat(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def recipe_set(out: Path) -> dict[str, Path]:
    """suffix ('' for train) → file, for the single recipe set build_recipe wrote into `out`."""
    (predict,) = out.glob("*_predict.yaml")
    stem = predict.name.removesuffix("_predict.yaml")
    files = {s: out / f"{stem}{s}.yaml" for s in ("", "_predict", "_merge", "_gptq", "_chat")}
    files = {s: p for s, p in files.items() if s != "_gptq" or p.is_file()}  # no GPTQ companion for gemma-3
    assert all(p.is_file() for p in files.values()), sorted(out.iterdir())
    return files


def loss_lines(output_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r]


# ---- the main job: Qwen3 thinking model on the shipped crypto notes ------------------------------------------


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, tiny_qwen3) -> tuple[Path, dict[str, Path]]:
    """Work folder (the launch folder: saves/ resolves here) and the recipe set planned for 1x24GB."""
    work = tmp_path_factory.mktemp("main_job")
    data = work / "dataset_info"  # absolute, so dataset_dir resolves from any launch folder
    assert build_dataset(["markdown", str(CRYPTO_NOTES), "--name", "crypto", "--out", str(data),
                          "--model", "qwen3-4b-thinking", "--require-reasoning", "--quiet"]) == 0
    assert build_recipe(["--dataset-dir", str(data), "--out", str(work / "recipes"), "--gpu", "1x24GB",
                         "--set", f"model_name_or_path={tiny_qwen3}", *STEPS, *CPU_SETS, *SHORT]) == 0
    return work, recipe_set(work / "recipes")


@pytest.fixture(scope="module")
def trained(main_job, run_lf) -> tuple[Path, dict[str, Path]]:
    work, files = main_job
    run_lf(["train", str(files[""])], cwd=work)
    return main_job


def test_recipe_set_shares_template_thinking_and_paths(main_job, tiny_qwen3):
    _, files = main_job
    r = {s: flat(p) for s, p in files.items()}
    for s in ("", "_predict", "_merge", "_chat"):
        assert (r[s]["template"], r[s]["enable_thinking"]) == ("qwen3", True), s
    sft = r[""]["output_dir"]
    assert sft.startswith("saves/")  # relative: llamafactory-cli must be launched from the project root
    assert r["_predict"]["adapter_name_or_path"] == r["_merge"]["adapter_name_or_path"] == sft
    assert r["_chat"]["adapter_name_or_path"] == sft
    # --set model_name_or_path reaches every recipe but GPTQ, which quantizes the merged folder.
    assert {r[s]["model_name_or_path"] for s in ("", "_predict", "_merge", "_chat")} == {str(tiny_qwen3)}
    assert r["_gptq"]["model_name_or_path"] == r["_merge"]["export_dir"]


def test_train_recipe_trains_and_saves_the_adapter(trained):
    work, files = trained
    out = work / flat(files[""])["output_dir"]
    losses = loss_lines(out)
    assert len(losses) >= 2 and all(r["loss"] > 0 for r in losses)
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()


def test_predict_recipe_writes_predictions(trained, run_lf):
    work, files = trained
    run_lf(["train", str(files["_predict"])], cwd=work)
    preds = work / flat(files["_predict"])["output_dir"] / "generated_predictions.jsonl"
    rows = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert 1 <= len(rows) <= 4  # max_samples=4 of crypto_test
    assert all({"prompt", "predict", "label"} <= row.keys() for row in rows)
    assert all(row["label"].strip() for row in rows)


def test_merge_recipe_exports_a_loadable_merged_model(trained, run_lf, tiny_qwen3):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work, files = trained
    run_lf(["export", str(files["_merge"])], cwd=work)
    merged = work / flat(files["_merge"])["export_dir"]
    model = AutoModelForCausalLM.from_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer("什么是对称加密？", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 2
    # The adapter really was folded in: some LoRA-targeted weight moved away from the base model's.
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen3).state_dict()
    moved = [k for k, v in model.state_dict().items() if "proj" in k and not torch.equal(v, base[k])]
    assert moved


# ---- the gemma3 seed: 4-bit QLoRA for an 8 GB card, on Belle-format data ----------------------------------------

BELLE_QA = [
    ("用一句话解释什么是对称加密。", "对称加密是指加密和解密使用同一把密钥的加密方式，例如 AES 和 SM4。"),
    ("请列举三种常见的哈希算法。", "常见的哈希算法有 SHA-256、SHA-3 和国密 SM3，它们都把任意长度的消息映射为固定长度的摘要。"),
    ("为什么密码不能明文存储在数据库里？", "一旦数据库泄露，明文密码会被直接利用，应当使用加盐的慢哈希函数如 Argon2 存储。"),
    ("把“今天天气很好”翻译成英文。", "The weather is very nice today."),
    ("写一句鼓励正在备考的学生的话。", "坚持每天进步一点点，考场上的从容来自今天的努力，加油！"),
    ("解释一下什么是数字签名。", "数字签名用私钥对消息摘要签名，任何人都能用对应公钥验证消息来源和完整性。"),
    ("简述 TLS 握手的目的。", "TLS 握手用于协商加密算法、验证服务器身份，并安全地生成双方共享的会话密钥。"),
    ("什么是中间人攻击？", "攻击者插入通信双方之间，冒充彼此转发并篡改消息，双方却以为在直接通信。"),
    ("给出一个保护个人隐私的小建议。", "不同网站使用不同的强密码，并开启两步验证，可以大大降低账号被盗的风险。"),
    ("计算 12 乘以 15 等于多少？", "12 乘以 15 等于 180。"),
    ("请用一句话介绍长城。", "长城是中国古代修建的军事防御工程，绵延上万里，是世界文化遗产。"),
    ("春天适合做哪些户外活动？", "春天适合踏青、放风筝、骑自行车和爬山，既能锻炼身体又能欣赏花草。"),
    ("如何泡一杯好喝的绿茶？", "用八十度左右的水冲泡，茶叶与水的比例约为一比五十，浸泡两三分钟即可。"),
    ("解释“温故而知新”的意思。", "复习学过的知识，能从中获得新的理解和体会，出自《论语》。"),
    ("什么是公钥基础设施？", "公钥基础设施是签发、管理和吊销数字证书的一整套体系，用来把公钥和身份绑定。"),
    ("ECB 模式为什么不安全？", "ECB 对相同的明文分组产生相同的密文分组，会泄露明文的结构和重复模式。"),
    ("初始化向量可以重复使用吗？", "不可以，在 CTR 或 GCM 模式下重复使用 IV 会泄露明文甚至破坏认证。"),
    ("推荐一本适合入门编程的书。", "可以从《Python 编程：从入门到实践》开始，内容循序渐进，练习丰富。"),
    ("用三个词形容大海。", "辽阔、深邃、澎湃。"),
    ("为什么要多喝水？", "水参与体内的新陈代谢和体温调节，充足饮水有助于保持精力和皮肤健康。"),
    ("什么是零知识证明？", "零知识证明让证明者在不泄露秘密本身的前提下，使验证者相信某个陈述为真。"),
    ("简述迪菲-赫尔曼密钥交换。", "双方各自选取私密随机数并交换公开值，就能在公开信道上算出同一个共享密钥。"),
    ("写一句关于秋天的诗句。", "停车坐爱枫林晚，霜叶红于二月花。"),
    ("如何提高睡眠质量？", "保持规律作息，睡前一小时远离手机屏幕，卧室保持安静、黑暗和凉爽。"),
    ("侧信道攻击利用了什么信息？", "侧信道攻击利用运算时间、功耗和电磁辐射等物理泄露来推断密钥。"),
    ("量子计算对 RSA 有什么威胁？", "Shor 算法能在量子计算机上高效分解大整数，从而破解 RSA。"),
    ("什么是后量子密码学？", "后量子密码学研究能抵抗量子计算攻击的算法，例如基于格和基于哈希的方案。"),
    ("给朋友写一句生日祝福。", "祝你生日快乐，新的一岁万事顺意，笑容常在！"),
    ("地球绕太阳一周需要多长时间？", "地球绕太阳公转一周大约需要 365.25 天，也就是一年。"),
    ("简单介绍一下熊猫。", "大熊猫是中国特有的珍稀动物，主要以竹子为食，生活在四川等地的山林中。"),
    ("HMAC 有什么用途？", "HMAC 把哈希函数和共享密钥结合，用来验证消息的完整性和来源。"),
    ("一次一密为什么难以实用？", "一次一密要求密钥与明文一样长且只用一次，密钥的分发和保管成本太高。"),
    ("如何判断一个随机数生成器是否安全？", "安全的随机数生成器输出不可预测，即使知道部分输出也推不出其他输出。"),
    ("请解释什么是证书链。", "证书链从网站证书逐级指向中间 CA 和根 CA，浏览器沿链验证签名建立信任。"),
    ("学习外语有什么好方法？", "每天坚持听说读写，多和母语者交流，并在真实场景中使用所学的表达。"),
    ("为什么树叶在秋天会变黄？", "秋天气温下降，叶绿素分解减少，叶片中的胡萝卜素和叶黄素显现出来。"),
    ("说出中国的四大发明。", "中国古代的四大发明是造纸术、印刷术、火药和指南针。"),
    ("什么是密码分析中的暴力破解？", "暴力破解是逐一尝试所有可能的密钥，直到找到能正确解密的那一个。"),
    ("用一句话总结运动的好处。", "规律运动能增强心肺功能、改善情绪，还能帮助保持健康的体重。"),
    ("椭圆曲线密码有什么优势？", "在相同安全强度下，椭圆曲线密码的密钥更短、运算更快、占用带宽更少。"),
]


def belle_file(path: Path) -> Path:
    rows = [{"instruction": q, "input": "", "output": a} for q, a in BELLE_QA]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gemma3_qlora_seed_trains_on_belle(tmp_path, tiny_gemma3, run_lf):
    data = tmp_path / "dataset_info"
    assert build_dataset(["belle", str(belle_file(tmp_path / "belle.json")), "--name", "belle", "--out", str(data),
                          "--quiet", "--split", "80/10/10"]) == 0
    seed = ["--model", "gemma-3-4b-it", "--dataset", "belle", "--gpu", "1x3070", "--method", "qlora",
            "--dataset-dir", str(data)]

    assert build_recipe([*seed, "--out", str(tmp_path / "planned")]) == 0
    planned = flat(recipe_set(tmp_path / "planned")[""])
    assert (planned["quantization_bit"], planned["quantization_method"]) == (4, "bnb")
    assert planned["template"] == "gemma3"

    # CPU override, explicit: bitsandbytes (the `gpu` extra) is not installed here and its 4-bit path wants CUDA,
    # so quantization_bit=null trains plain LoRA. quantization_method may stay: LF reads it only when
    # quantization_bit is set (model_utils/quantization.py). Everything else stays as planned.
    # --force: without 4-bit the 8 GB plan no longer fits (re-priced and refused otherwise); here it runs on a CPU.
    assert build_recipe([*seed, "--out", str(tmp_path / "recipes"), "--force", "--set",
                         f"model_name_or_path={tiny_gemma3}", *STEPS, *CPU_SETS, "quantization_bit=null"]) == 0
    files = recipe_set(tmp_path / "recipes")
    train = flat(files[""])
    assert "quantization_bit" not in train
    assert {k: v for k, v in train.items() if k not in {"model_name_or_path", "max_steps", "bf16",
                                                         "enable_liger_kernel", "quantization_bit"}} == {
        k: v for k, v in planned.items() if k not in {"model_name_or_path", "bf16", "enable_liger_kernel",
                                                      "quantization_bit"}}
    assert flat(files["_chat"])["template"] == flat(files["_merge"])["template"] == "gemma3"
    assert "_gptq" not in files  # LF 0.9.5's GPTQ export cannot find gemma-3's blocks on transformers 5.6

    run_lf(["train", str(files[""])], cwd=tmp_path)
    out = tmp_path / train["output_dir"]
    assert len(loss_lines(out)) >= 2
    assert (out / "adapter_model.safetensors").is_file()
