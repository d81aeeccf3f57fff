"""Reading a pipeline config: YAML file + `--set key=value` overrides -> a validated PipelineConfig."""
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from loraflow.schemas.config import DataConfig, PipelineConfig, recommendation_warnings
from loraflow.tasks.common.base_model import check_model_reference
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.text_files import readable_file


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and a YAML-typed value (so 1e-4, true, [a, b] work)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise LoraflowError(f"--set {override!r} is not of the form dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of the raw config dict with each `dotted.key=value` applied."""
    data = _deep_copy(data)
    for override in overrides:
        path, value = parse_override(override)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise LoraflowError(f"--set {override!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def format_validation_error(error: ValidationError, source: str, lines: dict[str, int] | None = None) -> str:
    """Every problem of a config, one per key path (with its file:line where known), in a single message."""
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `loraflow config schema` lists every key)"
        line = (lines or {}).get(key)
        problems.append(f"{key}: {message} (line {line})" if line else f"{key}: {message}")
    return f"invalid config {source}: " + "; ".join(problems)


def build_config(data: dict, source: str = "(dict)", lines: dict[str, int] | None = None) -> PipelineConfig:
    """Validate a raw config dict, reporting every problem together."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise LoraflowError(format_validation_error(error, source, lines)) from None


def load_pipeline_config(config_path: str | Path, overrides: list[str]) -> tuple[PipelineConfig, list[str]]:
    """The config every flow and the CLI run with: the YAML with `key=value` overrides (paths in it resolve against the
    file), a local model path checked before anything starts, and the guide's warnings on its values."""
    config = load_config(config_path, overrides)
    check_model_reference(config.model.name_or_path, config.model.gguf_file)
    return config, recommendation_warnings(config)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a YAML config (None: all defaults), apply overrides, resolve data.path against the file."""
    data: dict = {}
    lines: dict[str, int] = {}
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        readable_file(path, "config file", "pass the path of a pipeline YAML such as examples/quickstart/pipeline.yaml")
        data, lines = read_config_yaml(path)
        data = _resolve_relative_paths(data, path.parent)
    data = apply_overrides(data, overrides or [])
    for override in overrides or []:  # a value given with --set is not the one on the file's line
        lines.pop(override.partition("=")[0].strip(), None)
    return build_config(data, source, lines)


def read_config_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """The config file as a dict and each dotted key's line; refuses what YAML would accept silently.

    A repeated key (two `train:` blocks) makes YAML keep the last one and drop the first without a word, and an
    empty file would run on defaults nobody chose: both are errors naming the line.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise LoraflowError(f"config {path}:{line} is not UTF-8 text (byte 0x{data[error.start]:02x}): is it a binary file? "
                            "Pass a pipeline YAML such as examples/quickstart/pipeline.yaml") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise LoraflowError(f"config {where} is not valid YAML ({getattr(error, 'problem', error)}); fix the syntax there") from None
    if root is None or (isinstance(root, yaml.MappingNode) and not root.value):
        raise LoraflowError(f"config {path} is empty; write at least its task_card and data sections "
                            "(see examples/quickstart/pipeline.yaml)")
    if not isinstance(root, yaml.MappingNode):
        raise LoraflowError(f"config {path} must be a mapping of sections (task_card, data, train, ...), got {root.tag.rsplit(':', 1)[-1]}")
    lines: dict[str, int] = {}
    _collect_lines(root, "", lines, path)
    return yaml.safe_load(text), lines


def _collect_lines(node: yaml.MappingNode, prefix: str, lines: dict[str, int], path: Path) -> None:
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        line = key_node.start_mark.line + 1
        if key in seen:
            raise LoraflowError(f"config {path}:{line}: key {key} appears again (first at line {seen[key]}); YAML would "
                                "silently keep only the last one: merge the two into one")
        seen[key] = lines[key] = line
        if isinstance(value_node, yaml.MappingNode):
            _collect_lines(value_node, f"{key}.", lines, path)


def _resolve_relative_paths(data: dict, base: Path) -> dict:
    """Paths in a config file are relative to that file, so a config works from any working directory."""
    data = _deep_copy(data)
    for section, key in (("data", "path"), ("split", "frozen_test")):
        value = (data.get(section) or {}).get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            data[section][key] = str((base / value).resolve())
    model = data.get("model") or {}
    value = model.get("name_or_path")
    if isinstance(value, str) and value.startswith((".", "/")) and not Path(value).is_absolute():
        model["name_or_path"] = str((base / value).resolve())
    return data


def dump_config(config: PipelineConfig) -> dict:
    """The config as plain JSON-able data (for logging and Prefect parameters)."""
    return config.model_dump(mode="json")


def flatten_config(config: PipelineConfig) -> dict[str, str]:
    """Dotted key -> string value, for MLflow params."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = str(node)[:500]

    walk("", dump_config(config))
    return flat


def input_file(data: DataConfig, input_path: str | None) -> str | None:
    """The input file in force: --input (input_path) over data.path; None when neither is set."""
    return str(input_path or data.path) if (input_path or data.path) else None


def with_input(config: PipelineConfig, input_path: str | None) -> PipelineConfig:
    """The config with the input file in force as data.path."""
    return config.model_copy(update={"data": config.data.model_copy(update={"path": input_file(config.data, input_path)})})
