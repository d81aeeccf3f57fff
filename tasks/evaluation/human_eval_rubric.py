"""Which rubric raters score, and the field-by-field view of JSON answers on the rating page."""
import json

from loraflow.schemas.human_eval import JSON_RUBRIC_DIMENSIONS, RATING_META_COLUMNS, RUBRIC_DESCRIPTIONS, RUBRIC_DIMENSIONS
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.metrics import parse_json_object


def parse_rubric(spec: list[str]) -> dict[str, str]:
    """`name` (a known dimension) or `name=question` items -> {dimension: the question raters answer}."""
    rubric = {}
    for item in spec:
        name, _, question = (part.strip() for part in item.partition("="))
        if not name.isidentifier() or name in RATING_META_COLUMNS:
            raise LoraflowError(f"--rubric {item!r}: a dimension needs a plain name (letters, digits, _) other than "
                                f"{', '.join(RATING_META_COLUMNS)}, e.g. --rubric tone='Is the tone polite?'")
        if not question and name not in RUBRIC_DESCRIPTIONS:
            raise LoraflowError(f"--rubric {name!r} is not a known dimension ({', '.join(RUBRIC_DESCRIPTIONS)}); "
                                f"give its question as {name}='...?'")
        rubric[name] = question or RUBRIC_DESCRIPTIONS[name]
    return rubric


def choose_rubric(references: list[str], spec: list[str] | None) -> dict[str, str]:
    """The rubric asked for, else the JSON rubric when most references are JSON objects, else the general one."""
    if spec:
        return parse_rubric(spec)
    json_share = sum(parse_json_object(r) is not None for r in references) / max(len(references), 1)
    names = JSON_RUBRIC_DIMENSIONS if json_share > 0.5 else RUBRIC_DIMENSIONS
    return {name: RUBRIC_DESCRIPTIONS[name] for name in names}


def _shown(value) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def json_field_diff(reference: str, output: str) -> list[dict] | None:
    """Each field of a JSON reference beside the model's value, marked same/different/missing/extra; None when not JSON."""
    expected = parse_json_object(reference)
    if expected is None:
        return None
    got = parse_json_object(output)
    if got is None:
        return [{"field": "(whole answer)", "reference": reference, "output": output or "(empty)", "status": "not JSON"}]
    rows = []
    for field in [*expected, *(k for k in got if k not in expected)]:
        if field not in got:
            status = "missing"
        elif field not in expected:
            status = "extra"
        else:
            status = "same" if expected[field] == got[field] else "different"
        rows.append({"field": field, "reference": _shown(expected.get(field, "")), "output": _shown(got.get(field, "")), "status": status})
    return rows
