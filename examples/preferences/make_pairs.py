"""Generate the preference example: English support tickets, the right JSON as chosen, a trap as rejected.

Every ticket carries a decoy: a word that points at the wrong field value and that the ticket itself negates
("not urgent", "I don't want a refund"). The rejected answer follows the decoy in exactly one field (category or
priority), so a model that matches surface words prefers it. Seeded and reproducible:
`python examples/preferences/make_pairs.py` rewrites pairs.jsonl byte for byte.
"""
import json
import random
from pathlib import Path

SYSTEM = ("Extract the support ticket as JSON with keys category (billing|technical|account|shipping|refund), "
          "priority (low|medium|high), product.")
PRODUCTS = ["CloudDrive", "PhotoSync", "MailBox Pro", "SmartHub", "FitBand", "NoteKeeper", "PrintPal", "WaveRouter"]
NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kate", "Liam"]
# (category, what happened, decoy category named and negated in the ticket)
CATEGORY_TRAPS = [
    ("shipping", "my {p} order #{n} has still not arrived after {d} days. I do not want a refund, just the package.", "refund"),
    ("billing", "I was charged twice for {p} on invoice {n}. It is not a technical problem, the app works fine.", "technical"),
    ("technical", "{p} crashes every time I open it since update {n}. My billing and payments are all fine.", "billing"),
    ("account", "I cannot log in to my {p} account, the reset code {n} never works. This has nothing to do with shipping.", "shipping"),
    ("refund", "please give me my money back for {p}, order {n}. The invoice was correct, this is not a billing error.", "billing"),
]
# (priority, sentence, decoy priority the wording suggests but the ticket rules out)
PRIORITY_TRAPS = [
    ("low", "Not urgent at all, this is no emergency, whenever you have time.", "high"),
    ("low", "No hurry and nothing critical here, next week is fine.", "high"),
    ("high", "This is not a small thing I can wait on: my whole team is blocked today.", "low"),
    ("high", "I cannot wait until next week, I need it fixed before tonight.", "low"),
    ("medium", "It is not an emergency, but please look at it this week.", "high"),
]
OPENERS = ["Hi,", "Hello team,", "Good morning,", "Hey support,", "Dear support,", ""]


def answer(category: str, priority: str, product: str) -> str:
    return json.dumps({"category": category, "priority": priority, "product": product})


def make_pairs(count: int = 240, seed: int = 7) -> list[dict]:
    """count pairs; every even one traps the category, every odd one the priority."""
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        category, event, wrong_category = CATEGORY_TRAPS[i % len(CATEGORY_TRAPS)]
        priority, urgency, wrong_priority = PRIORITY_TRAPS[(i // len(CATEGORY_TRAPS)) % len(PRIORITY_TRAPS)]
        product = rng.choice(PRODUCTS)
        text = event.format(p=product, n=rng.randint(10_000, 99_999), d=rng.randint(3, 21))
        ticket = f"{rng.choice(OPENERS)} {text[0].upper() + text[1:]} {urgency} Thanks, {rng.choice(NAMES)}".strip()
        rejected = (answer(wrong_category, priority, product) if i % 2 == 0 else answer(category, wrong_priority, product))
        pairs.append({"id": f"pref{i:03d}", "trap": "category" if i % 2 == 0 else "priority",
                      "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ticket}],
                      "chosen": [{"role": "assistant", "content": answer(category, priority, product)}],
                      "rejected": [{"role": "assistant", "content": rejected}]})
    return pairs


if __name__ == "__main__":
    out = Path(__file__).with_name("pairs.jsonl")
    out.write_text("".join(json.dumps(p) + "\n" for p in make_pairs()), encoding="utf-8")
    print(f"wrote {out}")
