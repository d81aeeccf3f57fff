"""The augmentation quality gate: copies, drifts, language changes, length and lost answer values are rejected."""
import pytest

from loraflow.schemas.config.augment import AugmentConfig
from loraflow.tasks.data.augment_gate import answer_values, gate_failures, similarity

CONFIG = AugmentConfig()
EN = "Could you help me cancel my order? The package arrived broken and I need a refund quickly."
ZH = "请帮我取消订单，包裹到的时候已经损坏了，我需要尽快退款。"


def _checks(parent, child, keep=(), config=CONFIG):
    return [f["check"] for f in gate_failures(parent, child, list(keep), config)]


@pytest.mark.parametrize("parent,child", [
    (EN, "Would you cancel my order for me? My parcel came broken and I need my money back fast."),
    (EN, "Please help me cancel my order. The package arrived damaged and I need a refund soon."),
    (ZH, "麻烦帮我把订单取消掉，包裹送到时已经坏了，我想尽快拿到退款。"),
    (ZH, "请取消我的订单。包裹送达时已损坏，我需要尽快退款。"),
])
def test_real_paraphrases_pass(parent, child):
    assert _checks(parent, child) == []


def test_copies_are_rejected():
    assert _checks(EN, EN) == ["unchanged"]
    assert _checks(EN, EN.replace("quickly", "quickly!")) == ["copy"]
    long_zh = ZH + "订单号是4411，收件人是张伟，地址在北京市海淀区，请尽快处理。"
    assert _checks(long_zh, long_zh.replace("尽快处理", "尽快地处理")) == ["copy"]


def test_drifts_are_rejected():
    assert "drift" in _checks(EN, "Write a long poem about the sea, the wind and an old lighthouse keeper on an island.")
    assert "drift" in _checks(ZH, "今天天气很好，我们一起去公园散步，然后吃一顿火锅吧。")


def test_language_change_is_rejected():
    assert "language_changed" in _checks(EN, "Pourriez-vous annuler ma commande ? Le colis est arrivé cassé et je veux un remboursement.")
    assert "language_changed" in _checks(EN, "你能帮我取消订单吗？包裹到的时候坏了，我需要尽快退款。")
    assert "language_changed" in _checks(ZH, "Please cancel my order, the package arrived broken and I need a refund.")


def test_length_ratio_band():
    assert "too_short" in _checks(EN, "Cancel my order.")
    assert "too_long" in _checks(EN, EN + " " + " ".join([EN.replace("order", "purchase")] * 2))


def test_lost_answer_values_are_rejected():
    parent = "Customer Alice Smith says her wireless mouse broke. Order 4411."
    keep = answer_values(parent, '{"customer": "Alice Smith", "product": "wireless mouse", "order": "4411"}')
    assert keep == ["wireless mouse", "Alice Smith", "4411"]
    child = "A customer, Alice Smith, reports that her cordless mouse broke. Order 4411."
    assert _checks(parent, child, keep) == ["lost_answer_value"]
    assert _checks(parent, "A customer, Alice Smith, reports that her wireless mouse broke. Order 4411.", keep) == []


def test_answer_values_only_for_json_answers():
    assert answer_values("Order 4411 broke.", "Your order 4411 will be replaced.") == []
    assert answer_values("订单4411的耳机坏了", '```json\n{"order": 4411, "product": "耳机", "urgent": true}\n```') == ["4411", "耳机"]


def test_similarity_is_symmetric_and_bounded():
    assert similarity(EN, EN) == 1.0
    assert similarity(EN, ZH) == pytest.approx(similarity(ZH, EN), abs=0.2)
    assert 0.0 <= similarity(EN, "x") < 0.1
