"""Every deployment's Run form, built as Prefect builds it: a config file, a few described settings, overrides as lines."""
import pytest
import yaml

from tests.conftest import REPO

DEPLOYMENTS = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())["deployments"]
ENTRYPOINTS = sorted({d["entrypoint"] for d in DEPLOYMENTS})


def run_form(entrypoint: str) -> dict:
    """The parameter schema `prefect deploy` stores for the entrypoint's flow (what the Run form renders)."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    path, name = entrypoint.split(":")
    return parameter_schema(load_flow_from_entrypoint(f"{REPO / path}:{name}").fn).model_dump_for_openapi()


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_each_run_form_has_a_few_described_typed_inputs_with_defaults(entrypoint):
    schema = run_form(entrypoint)
    fields = schema["properties"]
    assert 1 <= len(fields) <= 10, f"{entrypoint}: {len(fields)} inputs"
    for name, field in fields.items():
        assert len(field.get("description") or "") > 20, f"{entrypoint} {name}: no help text"
        assert "anyOf" not in field and field.get("type"), f"{entrypoint} {name}: not one plain type ({field})"
    # only the version to promote has no default: which version is the person's choice
    assert set(schema.get("required") or []) <= {"version"}, entrypoint
    if "config_path" in fields:
        assert (REPO / fields["config_path"]["default"]).is_file()
        assert "dotted.key=value" in fields["overrides"]["description"] and fields["overrides"]["type"] == "array"


def test_the_data_and_evaluate_forms_no_longer_show_the_whole_config():
    for entrypoint in ("flows/data.py:prepare_data_from_file", "flows/evaluate.py:evaluate_from_file"):
        assert entrypoint in ENTRYPOINTS
        schema = run_form(entrypoint)
        assert "config" not in schema["properties"] and "config_path" in schema["properties"]
        assert not schema.get("definitions")  # no nested config models behind the form
