"""Generate the quickstart data set: support tickets (English and Chinese) to extract into JSON, with realistic dirt.

Seeded and reproducible: `python examples/quickstart/make_tickets.py` rewrites tickets.jsonl byte for byte.
"""
import json
import random
from pathlib import Path

SYSTEM = "Extract the support ticket as JSON with keys category (billing|technical|account|shipping|refund), priority (low|medium|high), product."
PRODUCTS_EN = ["CloudDrive", "PhotoSync", "MailBox Pro", "SmartHub", "FitBand", "NoteKeeper"]
PRODUCTS_ZH = ["云盘", "智能音箱", "手环", "相册同步", "邮箱专业版", "笔记本"]
ISSUES_EN = {
    "billing": ["I was charged twice for {p} this month", "my {p} invoice shows the wrong amount", "the {p} subscription price went up without notice"],
    "technical": ["{p} crashes every time I open it", "{p} will not sync since the last update", "{p} shows an error code 502"],
    "account": ["I cannot log in to my {p} account", "please change the email on my {p} account", "my {p} password reset link does not work"],
    "shipping": ["my {p} order has not arrived yet", "the {p} package was delivered to the wrong address", "tracking for my {p} order stopped updating"],
    "refund": ["I want a refund for {p}", "please cancel my {p} order and refund me", "{p} arrived broken, I need my money back"],
}
ISSUES_ZH = {
    "billing": ["{p}这个月扣了我两次费", "{p}的发票金额不对", "{p}订阅突然涨价了"],
    "technical": ["{p}一打开就闪退", "{p}更新后无法同步", "{p}一直提示错误代码502"],
    "account": ["我登录不了{p}账号", "请帮我修改{p}账号绑定的邮箱", "{p}的重置密码链接打不开"],
    "shipping": ["我的{p}订单还没到", "{p}的包裹送错地址了", "{p}订单的物流信息不更新了"],
    "refund": ["我要申请{p}退款", "请取消我的{p}订单并退款", "{p}收到时是坏的，我要退款"],
}
URGENCY_EN = {"high": ["This is urgent, please fix it ASAP.", "I need this resolved immediately!"], "medium": ["Please take a look.", "Can you help?"], "low": ["No rush, whenever you have time.", "Just letting you know."]}
URGENCY_ZH = {"high": ["非常紧急，请马上处理！", "请立刻解决！"], "medium": ["请帮忙看一下。", "麻烦处理一下。"], "low": ["不着急，有空再看。", "只是告知一下。"]}
OPENERS_EN = ["Hi,", "Hello team,", "Dear support,", "Good morning,", "Hey there,", ""]
OPENERS_ZH = ["你好，", "客服你好，", "您好，", "在吗？", "早上好，", ""]
# Details real tickets carry: they make every ticket different, as in a real export.
DETAILS_EN = ["My order number is #{n}.", "I have been a customer since {y}.", "This started on {d}.", "I am on the {plan} plan.",
              "I already tried restarting the app.", "My username is {u}.", "It happened again this morning.", "I contacted you last week about this too."]
DETAILS_ZH = ["订单号是{n}。", "我从{y}年开始使用。", "问题从{d}开始出现。", "我用的是{plan}套餐。", "我已经重启过应用了。", "我的用户名是{u}。",
              "今天早上又出现了。", "上周我也反馈过这个问题。"]
PLANS = ["Basic", "Family", "Business", "Premium"]
USERS = ["lily88", "mark_w", "chen.jie", "anna-k", "wang2019", "raj_p", "sofia.m", "zhao_li"]


def detail(rng: random.Random, language: str) -> str:
    """One or two random details with random numbers, names and dates."""
    pool = DETAILS_EN if language == "en" else DETAILS_ZH
    picks = rng.sample(pool, rng.choice([1, 2]))
    values = dict(n=rng.randint(10000, 99999), y=rng.randint(2015, 2025), d=f"{rng.randint(1, 12)}/{rng.randint(1, 28)}",
                  plan=rng.choice(PLANS), u=rng.choice(USERS))
    return (" " if language == "en" else "").join(p.format(**values) for p in picks)


def make_record(rng: random.Random, i: int, language: str) -> dict:
    """One clean ticket with its JSON answer."""
    category = rng.choice(list(ISSUES_EN))
    priority = rng.choice(["high", "medium", "medium", "low"])
    if language == "en":
        product = rng.choice(PRODUCTS_EN)
        text = f"{rng.choice(OPENERS_EN)} {rng.choice(ISSUES_EN[category]).format(p=product)}. {detail(rng, language)} {rng.choice(URGENCY_EN[priority])}".strip()
    else:
        product = rng.choice(PRODUCTS_ZH)
        text = f"{rng.choice(OPENERS_ZH)}{rng.choice(ISSUES_ZH[category]).format(p=product)}。{detail(rng, language)}{rng.choice(URGENCY_ZH[priority])}"
    answer = json.dumps({"category": category, "priority": priority, "product": product}, ensure_ascii=False)
    return {
        "id": f"t{i:04d}",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}, {"role": "assistant", "content": answer}],
        "language": language, "category": category,
    }


def dirty(rng: random.Random, records: list[dict]) -> list[str]:
    """Add what real exports contain: duplicates, near-duplicates, conflicts, empty answers, broken whitespace, bad lines."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for r in rng.sample(records, 10):  # exact duplicates under a new id
        lines.append(json.dumps({**r, "id": r["id"] + "-dup"}, ensure_ascii=False))
    for r in rng.sample(records, 10):  # near duplicates: an extra word and punctuation
        user = r["messages"][1]["content"]
        near = user.replace(".", "!!", 1) + (" Thanks" if r["language"] == "en" else "谢谢")
        msgs = [r["messages"][0], {"role": "user", "content": near}, r["messages"][2]]
        lines.append(json.dumps({**r, "id": r["id"] + "-near", "messages": msgs}, ensure_ascii=False))
    for r in rng.sample(records, 3):  # conflicting duplicates: same ticket, a different label
        answer = json.loads(r["messages"][2]["content"])
        answer["priority"] = {"high": "low", "medium": "high", "low": "medium"}[answer["priority"]]
        msgs = [r["messages"][0], r["messages"][1], {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]
        lines.append(json.dumps({**r, "id": r["id"] + "-conflict", "messages": msgs}, ensure_ascii=False))
    for r in rng.sample(records, 5):  # empty answers
        msgs = [r["messages"][0], r["messages"][1], {"role": "assistant", "content": "  "}]
        lines.append(json.dumps({**r, "id": r["id"] + "-empty", "messages": msgs}, ensure_ascii=False))
    for r in rng.sample(records, 20):  # broken whitespace, full-width letters, HTML remnants (cleaned, not removed)
        user = r["messages"][1]["content"]
        messy = "  " + user.replace(" ", "   ", 2).replace(",", " ,") + "<br>\t"
        msgs = [r["messages"][0], {"role": "user", "content": messy}, r["messages"][2]]
        lines[records.index(r)] = json.dumps({**r, "messages": msgs}, ensure_ascii=False)
    lines.append('{"id": "t9998", "messages": [{"role": "user", "content": "truncated export')  # malformed line
    lines.append(json.dumps({"id": "t9999", "messages": [{"role": "customer", "content": "wrong role"}, {"role": "assistant", "content": "{}"}]}))
    rng.shuffle(lines)
    return lines


def main() -> None:
    rng = random.Random(7)
    records = [make_record(rng, i, "en" if i % 5 < 3 else "zh") for i in range(280)]
    lines = dirty(rng, records)
    out = Path(__file__).with_name("tickets.jsonl")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
