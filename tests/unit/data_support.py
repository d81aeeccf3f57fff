"""Synthetic Chinese and English instruction records for the data-stage tests."""
import json
import random
from pathlib import Path

EN_NOUNS = ("order account invoice password printer laptop router package refund subscription screen battery "
            "keyboard delivery warranty license server backup calendar meeting report budget ticket camera").split()
EN_VERBS = "reset update cancel track install repair replace upgrade check renew export share restore open".split()
EN_EXTRA = [f"item{i}" for i in range(400)]
ZH_CHARS = "的一是不了人我在有他这中大来上个国到说们为子和你地出会也时要就可以对生能而下过天去年得自着后家多方样"
ZH_NOUNS = ["订单", "账户", "发票", "密码", "打印机", "电脑", "路由器", "包裹", "退款", "订阅", "屏幕", "电池", "键盘", "快递"]


def english_record(rng: random.Random, i: int) -> dict:
    """One distinct English alpaca-style record."""
    noun, verb = rng.choice(EN_NOUNS), rng.choice(EN_VERBS)
    extra = " ".join(rng.choice(EN_EXTRA) for _ in range(6))
    return {"instruction": f"How do I {verb} the {noun} for case {i} with {extra}?",
            "output": f"To {verb} your {noun}, open the settings page and choose the {rng.choice(EN_NOUNS)} tab; "
                      f"then follow the steps for {' '.join(rng.choice(EN_EXTRA) for _ in range(8))} and confirm."}


def chinese_record(rng: random.Random, i: int) -> dict:
    """One distinct Chinese alpaca-style record."""
    noun = rng.choice(ZH_NOUNS)
    q = "".join(rng.choice(ZH_CHARS) for _ in range(12))
    a = "".join(rng.choice(ZH_CHARS) for _ in range(40))
    return {"instruction": f"请问第{i}号{noun}的问题：{q}，应该怎么处理？", "output": f"您好，关于{noun}：{a}。"}


def write_records(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings for broken lines) as a JSON Lines file."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def chat(user: str, answer: str, **extra) -> dict:
    """An OpenAI-format record with one user turn and one assistant turn."""
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}
