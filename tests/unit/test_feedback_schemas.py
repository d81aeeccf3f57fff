"""Validation of posted feedback and of the feedback config section."""
import pytest
from pydantic import ValidationError

from loraflow.schemas.config.feedback import FeedbackConfig
from loraflow.schemas.feedback import FeedbackIn

BASE = {"messages": [{"role": "user", "content": "hi"}], "output": "hello", "rating": "up", "model_version": "v1"}


@pytest.mark.parametrize(("rating", "kind"), [("down", "badcase"), (1, "badcase"), (2, "badcase"), (3, "ok"), ("up", "ok")])
def test_rating_decides_the_kind(rating, kind):
    assert FeedbackIn(**{**BASE, "rating": rating}).kind == kind
    assert FeedbackIn(**{**BASE, "rating": rating, "correction": "better"}).kind == "correction"


@pytest.mark.parametrize(("change", "field"), [
    ({"rating": 0}, "rating"), ({"rating": True}, "rating"), ({"rating": "meh"}, "rating"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages"), ({"model_version": ""}, "model_version"),
    ({"correction": ""}, "correction"), ({"surprise": 1}, "surprise"), ({"timestamp": "yesterday"}, "timestamp"),
])
def test_invalid_feedback_names_the_field(change, field):
    with pytest.raises(ValidationError) as error:
        FeedbackIn(**{**BASE, **change})
    assert {e["loc"][0] for e in error.value.errors()} == {field}


def test_config_defaults_and_bounds():
    config = FeedbackConfig()
    assert config.database_url is None and config.deployment_name == "retrain-from-feedback/retrain-from-feedback"
    with pytest.raises(ValidationError, match="deployment_name"):
        FeedbackConfig(deployment_name="no-slash")
    with pytest.raises(ValidationError, match="max_body_bytes"):
        FeedbackConfig(max_body_bytes=10)
