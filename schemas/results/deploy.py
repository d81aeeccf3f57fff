"""What deployment returns: the registered version, its quantised variants, the champion and alias moves."""
from dataclasses import dataclass, field
from typing import Any

from loraflow.schemas.results._base import Result


@dataclass(frozen=True)
class RegisteredModel(Result):
    """A model version in the MLflow registry, the merged folder it was built from, and its aliases now."""

    name: str
    version: str
    model_uri: str
    source: str
    merged_path: str
    aliases: list[str] = field(default_factory=list)
    alias: str | None = None
    alias_uris: dict[str, str] = field(default_factory=dict)  # dict: alias name -> models:/ URI, one entry per alias the version holds
    parity: dict[str, Any] | None = None  # dict: the merge's parity check by name (numbers, dtype, differing prompts; None: nothing merged)


@dataclass(frozen=True)
class QuantizedVariant(Result):
    """An INT8/INT4/GGUF build of the merged model, its size, test metrics and whether its metric drop passes."""

    bits: str
    path: str
    size_bytes: int
    metrics: dict[str, float]  # dict: metric name -> value, named as evaluation names them
    gate: dict[str, Any]  # dict: variant_size_gate's {passed, drop, tolerance, base, variant}, written to variants.json as it is


@dataclass(frozen=True)
class Champion(Result):
    """The registered model version the `champion` alias points at, and its local folder."""

    name: str
    version: str
    path: str


@dataclass(frozen=True)
class AliasMove(Result):
    """A move of the champion alias by hand (promote or rollback), as recorded in the champion history."""

    name: str
    action: str
    version: str
    previous: str | None
    reason: str
    at: str
