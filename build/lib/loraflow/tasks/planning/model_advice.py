"""Base-model advice: recommended models by task and language, and licence checks against the intended use."""
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import yaml

Task = Literal["code", "chinese", "general"]
IntendedUse = Literal["research", "internal", "commercial"]


@dataclass(frozen=True)
class ModelAdvice:
    """One recommended base model."""

    task: Task
    name: str  # hub id
    params_b: float  # parameters in billions
    licence: str  # the hub's `license:` id
    languages: tuple[str, ...]
    why: str
    licence_name: str | None = None  # for `other`: which custom licence

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)


# The guide's picks: code -> CodeLlama / Qwen-Coder, Chinese -> Qwen / ChatGLM, general -> Llama / Qwen.
CATALOGUE: tuple[ModelAdvice, ...] = (
    ModelAdvice("code", "Qwen/Qwen2.5-Coder-1.5B-Instruct", 1.5, "apache-2.0", ("en", "zh"), "small code model; fits a 16 GiB card in bf16 LoRA"),
    ModelAdvice("code", "Qwen/Qwen2.5-Coder-7B-Instruct", 7.6, "apache-2.0", ("en", "zh"), "strong code model, permissive licence"),
    ModelAdvice("code", "Qwen/Qwen2.5-Coder-32B-Instruct", 32.8, "apache-2.0", ("en", "zh"), "best open code quality; QLoRA on one 80 GiB card"),
    ModelAdvice("code", "codellama/CodeLlama-7b-Instruct-hf", 6.7, "llama2", ("en",), "Llama 2 based code model"),
    ModelAdvice("code", "codellama/CodeLlama-13b-Instruct-hf", 13.0, "llama2", ("en",), "larger CodeLlama"),
    ModelAdvice("chinese", "Qwen/Qwen2.5-0.5B-Instruct", 0.5, "apache-2.0", ("zh", "en"), "tiny bilingual model for quick experiments"),
    ModelAdvice("chinese", "Qwen/Qwen2.5-1.5B-Instruct", 1.5, "apache-2.0", ("zh", "en"), "small bilingual model"),
    ModelAdvice("chinese", "Qwen/Qwen2.5-7B-Instruct", 7.6, "apache-2.0", ("zh", "en"), "strong Chinese and English"),
    ModelAdvice("chinese", "Qwen/Qwen2.5-14B-Instruct", 14.7, "apache-2.0", ("zh", "en"), "higher quality, QLoRA on a 24 GiB card"),
    ModelAdvice("chinese", "THUDM/chatglm3-6b", 6.2, "other", ("zh", "en"), "ChatGLM; commercial use needs registration", "chatglm3-6b"),
    ModelAdvice("chinese", "THUDM/glm-4-9b-chat", 9.4, "other", ("zh", "en"), "GLM-4; commercial use needs registration", "glm-4"),
    ModelAdvice("general", "HuggingFaceTB/SmolLM2-1.7B-Instruct", 1.7, "apache-2.0", ("en",), "small English model, CPU-friendly"),
    ModelAdvice("general", "meta-llama/Llama-3.2-3B-Instruct", 3.2, "llama3.2", ("en",), "small Llama 3"),
    ModelAdvice("general", "meta-llama/Llama-3.1-8B-Instruct", 8.0, "llama3.1", ("en",), "the common 8B general model"),
    ModelAdvice("general", "Qwen/Qwen2.5-7B-Instruct", 7.6, "apache-2.0", ("en", "zh"), "general and multilingual, permissive licence"),
    ModelAdvice("general", "Qwen/Qwen2.5-3B-Instruct", 3.1, "qwen-research", ("en", "zh"), "small Qwen, research licence only"),
)

# Licence id -> (class, what it means). Classes: permissive, conditional, copyleft, registration, non_commercial.
LICENCES: dict[str, tuple[str, str]] = {
    "apache-2.0": ("permissive", "Apache 2.0"), "mit": ("permissive", "MIT"), "bsd-3-clause": ("permissive", "BSD"),
    "bsd-2-clause": ("permissive", "BSD"), "cc-by-4.0": ("permissive", "CC BY 4.0 (attribution)"),
    "cc-by-sa-4.0": ("copyleft", "CC BY-SA 4.0: derivatives must be shared alike"),
    "gpl-3.0": ("copyleft", "GPL 3.0: distributing derivatives obliges source release"),
    "agpl-3.0": ("copyleft", "AGPL 3.0: serving derivatives over a network obliges source release"),
    "llama2": ("conditional", "Llama 2 Community License: commercial use allowed below 700M monthly users, under Meta's acceptable use policy"),
    "qwen": ("conditional", "Qwen License: commercial use above 100M monthly users needs a licence from Alibaba Cloud"),
    "gemma": ("conditional", "Gemma Terms of Use: commercial use allowed under Google's prohibited use policy"),
    "deepseek": ("conditional", "DeepSeek License: commercial use allowed with use-based restrictions"),
    "openrail": ("conditional", "OpenRAIL: commercial use allowed with use-based restrictions"),
    "qwen-research": ("non_commercial", "Qwen Research License: non-commercial use only"),
    "mnpl": ("non_commercial", "Mistral Non-Production License: no production or commercial use"),
    "other": ("unknown", "a custom licence: read it before use"),
}
for _llama in ("llama3", "llama3.1", "llama3.2", "llama3.3", "llama4"):
    LICENCES[_llama] = ("conditional", f"{_llama} Community License: commercial use allowed below 700M monthly users, "
                        "'Built with Llama' attribution, Meta's acceptable use policy")
_BUILTIN = {"tiny-random": "none", "smollm2-135m-instruct": "apache-2.0"}  # tiny-random: random weights built here


def recommend_models(task: Task | None = None, language: str | None = None) -> list[ModelAdvice]:
    """Recommended base models, optionally for one task type and/or language, smallest first within a task."""
    chosen = [m for m in CATALOGUE if (task is None or m.task == task) and (language is None or language in m.languages)]
    return sorted(chosen, key=lambda m: (m.task, m.params_b))


def read_licence(model_name_or_path: str) -> tuple[str | None, str | None, str]:
    """(licence id, licence name, where it was read) from the model card front matter, config.json, or the catalogue."""
    if model_name_or_path in _BUILTIN:
        return _BUILTIN[model_name_or_path], None, "built-in model"
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        found = _card_licence(path / "README.md") or _config_licence(path / "config.json")
        if found:
            return found
    else:
        card = _cached_card(model_name_or_path)
        found = _card_licence(card) if card else None
        if found:
            return found
    for advice in CATALOGUE:
        if advice.name.lower() == model_name_or_path.lower():
            return advice.licence, advice.licence_name, "loraflow's model catalogue"
    return None, None, "nowhere (no model card or config licence)"


def licence_conflicts(model_name_or_path: str, intended_use: IntendedUse) -> list[str]:
    """Warnings where the model's licence conflicts with the task card's intended use (empty when none)."""
    licence, licence_name, source = read_licence(model_name_or_path)
    if licence == "none" or intended_use == "research":
        return []
    if licence is None:
        if intended_use == "commercial":
            return [f"no licence found for {model_name_or_path} ({source}); confirm it allows commercial use before shipping"]
        return []
    key = licence.lower()
    kind, meaning = LICENCES.get(key) or _classify_unlisted(key)
    label = f"{licence}{f' ({licence_name})' if licence_name else ''}"
    if key == "other" and licence_name and "glm" in licence_name.lower():
        kind, meaning = "registration", "ChatGLM/GLM licence: commercial use only after registering with Zhipu AI"
    where = f"{model_name_or_path} is licensed {label} (from {source})"
    if kind == "non_commercial":
        if intended_use == "commercial":
            return [f"licence conflict: {where}: {meaning}; task_card.intended_use is commercial: choose another base model"]
        return [f"licence warning: {where}: {meaning}; internal business use may count as commercial, check with your legal team"]
    if intended_use != "commercial" or kind == "permissive":
        return []
    if kind in ("conditional", "registration", "copyleft"):
        return [f"licence conditions: {where}: {meaning}; make sure commercial use meets them"]
    return [f"licence unknown: {where}: {meaning}; confirm it allows commercial use"]


def _classify_unlisted(key: str) -> tuple[str, str]:
    if "-nc" in key or "noncommercial" in key or "non-commercial" in key or "research" in key:
        return "non_commercial", f"{key}: non-commercial terms"
    if "rail" in key:
        return "conditional", f"{key}: use-based restrictions"
    return "unknown", f"{key}: not a licence loraflow knows"


def _card_licence(readme: Path) -> tuple[str, str | None, str] | None:
    """`license:` (and `license_name:`) from a model card's YAML front matter."""
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front, _, _ = text[3:].partition("\n---")
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError:
        return None
    licence = meta.get("license") if isinstance(meta, dict) else None
    if isinstance(licence, list):
        licence = licence[0] if licence else None
    if not licence:
        return None
    return str(licence), meta.get("license_name"), f"model card {readme}"


def _config_licence(config: Path) -> tuple[str, str | None, str] | None:
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    licence = data.get("license") or data.get("licence")
    return (str(licence), None, f"config {config}") if licence else None


def _cached_card(repo_id: str) -> Path | None:
    """The hub model card, if it can be had (offline: only from the local cache)."""
    if repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename="README.md"))
    except Exception:  # noqa: BLE001 - any hub failure just means "no card"; the catalogue is the fallback
        return None
