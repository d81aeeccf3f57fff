"""Where the served model comes from: a local folder or an MLflow registry URI (alias or version)."""
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from loraflow.tasks.common.errors import LoraflowError

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed --model value; name/alias/version are set for registry URIs only."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @property
    def is_registry(self) -> bool:
        """True for models:/ URIs."""
        return self.name is not None


@dataclass(frozen=True)
class ResolvedModel:
    """A local folder to load and the registry version it holds (None for plain folders)."""

    path: str
    version: str | None


def parse_model_uri(uri: str) -> ModelRef:
    """Parse `models:/NAME@alias`, `models:/NAME/VERSION` or a local path."""
    if not uri.startswith("models:/"):
        return ModelRef(uri)
    match = _MODELS_URI.match(uri)
    if match is None:
        raise LoraflowError(f"--model {uri!r} is not a registry URI loraflow understands: use models:/NAME@ALIAS or models:/NAME/VERSION")
    return ModelRef(uri, match["name"], match["alias"], match["version"])


def served_model_name(uri: str) -> str:
    """The model id clients use by default: the registered name, or the folder's name."""
    ref = parse_model_uri(uri)
    return ref.name if ref.is_registry else Path(uri).resolve().name


def current_version(ref: ModelRef) -> str:
    """The registry version an alias points at now (or the pinned version)."""
    if ref.version is not None:
        return ref.version
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(ref.name, ref.alias).version)
    except MlflowException as error:
        raise LoraflowError(
            f"the registry has no alias {ref.alias!r} on model {ref.name!r} ({error.error_code}): "
            f"register and promote a model first (loraflow promote) or pass a local folder to --model"
        ) from None


def download_version(name: str, version: str, cache_dir: str | Path) -> str:
    """A local folder for one registered version, downloaded once into cache_dir by the registry module."""
    from loraflow.tasks.deploy.registry import resolve_model as resolve_registered

    # Pinned to the version, not the alias, so an alias moving mid-download cannot mix two models.
    return resolve_registered(f"models:/{name}/{version}", cache_dir=str(cache_dir))


def resolve_model(uri: str, cache_dir: str | Path | None = None) -> ResolvedModel:
    """A local folder for `uri` (registry versions are downloaded and cached) and the version it holds."""
    ref = parse_model_uri(uri)
    if not ref.is_registry:
        if not Path(uri).exists():
            raise LoraflowError(f"--model {uri} does not exist: pass a saved model folder or models:/NAME@champion")
        return ResolvedModel(str(Path(uri).resolve()), None)
    if cache_dir is None:
        from loraflow.tasks.common.settings import loraflow_home

        cache_dir = loraflow_home() / "serving"
    version = current_version(ref)
    return ResolvedModel(download_version(ref.name, version, cache_dir), version)


def resolve_model_uri(uri: str) -> str:
    """A local model folder for a models:/ URI or a path."""
    return resolve_model(uri).path


def materialize_model(uri: str, out_dir: str | Path) -> str:
    """A plain save_pretrained folder (weights + tokenizer side by side) for `uri` under out_dir, as vLLM needs it.

    Registry versions land in out_dir/NAME/VERSION (reused when present); returns that folder.
    """
    from loraflow.services.serving.loading import find_model_folders

    ref = parse_model_uri(uri)
    out_dir = Path(out_dir)
    resolved = resolve_model(uri, out_dir / ".downloads")
    target = out_dir / (ref.name or Path(resolved.path).name) / (resolved.version or "local")
    if target.is_dir():
        return str(target)
    model_dir, tokenizer_dir = find_model_folders(resolved.path)
    partial = target.with_name(f"{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(model_dir, partial)
    if tokenizer_dir != model_dir:
        shutil.copytree(tokenizer_dir, partial, dirs_exist_ok=True)
    partial.replace(target)
    return str(target)
