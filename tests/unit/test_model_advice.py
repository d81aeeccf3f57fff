"""Model advice: the catalogue by task, licences read from model cards/configs, conflicts with the intended use."""
import json

import pytest

from loraflow.tasks.planning.model_advice import licence_conflicts, read_licence, recommend_models


def test_catalogue_follows_the_guide_by_task_and_language():
    code = {m.name for m in recommend_models("code")}
    assert any("CodeLlama" in n for n in code) and any("Qwen2.5-Coder" in n for n in code)
    chinese = recommend_models("chinese")
    assert any("Qwen" in m.name for m in chinese) and any("chatglm" in m.name.lower() for m in chinese)
    assert all("zh" in m.languages for m in chinese)
    general = {m.name for m in recommend_models("general")}
    assert any("Llama-3" in n for n in general) and any("Qwen" in n for n in general)
    assert all(m.params_b > 0 and m.licence for m in recommend_models())
    assert [m.params_b for m in chinese] == sorted(m.params_b for m in chinese)
    assert all("zh" in m.languages for m in recommend_models(language="zh"))


def _model_dir(tmp_path, front_matter: str | None, config: dict | None = None):
    folder = tmp_path / "model"
    folder.mkdir()
    if front_matter is not None:
        (folder / "README.md").write_text(f"---\n{front_matter}\n---\n# Model card\n")
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    return str(folder)


def test_non_commercial_card_conflicts_with_commercial_use(tmp_path):
    model = _model_dir(tmp_path, "license: cc-by-nc-4.0\nlanguage: [en]")
    assert read_licence(model)[0] == "cc-by-nc-4.0"
    conflicts = licence_conflicts(model, "commercial")
    assert len(conflicts) == 1 and conflicts[0].startswith("licence conflict") and "cc-by-nc-4.0" in conflicts[0]
    assert "internal business use" in licence_conflicts(model, "internal")[0]
    assert licence_conflicts(model, "research") == []


def test_permissive_card_has_no_conflict(tmp_path):
    model = _model_dir(tmp_path, "license: apache-2.0")
    assert licence_conflicts(model, "commercial") == []


def test_conditional_and_registration_licences_warn_for_commercial_only(tmp_path):
    llama = _model_dir(tmp_path, "license: llama3.1")
    [warning] = licence_conflicts(llama, "commercial")
    assert "700M monthly users" in warning
    assert licence_conflicts(llama, "internal") == []
    (tmp_path / "glm").mkdir()
    (tmp_path / "glm" / "README.md").write_text("---\nlicense: other\nlicense_name: glm-4\n---\n")
    assert "registering with Zhipu AI" in licence_conflicts(str(tmp_path / "glm"), "commercial")[0]


def test_licence_from_config_when_the_card_has_none(tmp_path):
    model = _model_dir(tmp_path, "language: [zh]", {"model_type": "llama", "license": "qwen-research"})
    licence, _, source = read_licence(model)
    assert licence == "qwen-research" and "config" in source
    assert "non-commercial use only" in licence_conflicts(model, "commercial")[0]


def test_missing_licence_warns_for_commercial_use(tmp_path):
    model = _model_dir(tmp_path, None)
    assert read_licence(model)[0] is None
    assert "no licence found" in licence_conflicts(model, "commercial")[0]
    assert licence_conflicts(model, "internal") == []


@pytest.mark.parametrize(("name", "expected"), [("tiny-random", []), ("smollm2-135m-instruct", [])])
def test_builtin_models(name, expected):
    assert licence_conflicts(name, "commercial") == expected


def test_hub_id_offline_falls_back_to_the_catalogue():
    # HF_HUB_OFFLINE=1 in tests: no cached card, so the catalogue's licence is used.
    assert read_licence("Qwen/Qwen2.5-3B-Instruct")[0] == "qwen-research"
    assert licence_conflicts("Qwen/Qwen2.5-3B-Instruct", "commercial")[0].startswith("licence conflict")
    assert read_licence("someone/unknown-model")[0] is None
    assert "registering with Zhipu AI" in licence_conflicts("THUDM/glm-4-9b-chat", "commercial")[0]


def test_cli_models_lists_and_checks(tmp_path, capsys):
    from loraflow.cli import main

    assert main(["models", "--task", "code", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {m["task"] for m in listed} == {"code"}
    assert {"name", "params_b", "licence"} <= set(listed[0])
    assert main(["models"]) == 0
    assert "codellama/CodeLlama-7b-Instruct-hf" in capsys.readouterr().out
    model = _model_dir(tmp_path, "license: cc-by-nc-4.0")
    assert main(["models", "--check", model, "--use", "commercial", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"][0].startswith("licence conflict")
