"""loraflow: raw instruction data to a fine-tuned, evaluated, versioned and served LLM.

Installed, setuptools puts the stage folders inside this package (pyproject's package-dir): loraflow.flows,
loraflow.tasks, loraflow.schemas, loraflow.services. In a source checkout they sit beside it at the top of the
repository, so the repository root joins this package's search path; the folders that are not stage folders
(tests, benchmarks, ...) are never imported through it.
"""
from pathlib import Path

__version__ = "0.1.0"

_repository = Path(__file__).resolve().parent.parent
if not (Path(__file__).resolve().parent / "tasks").is_dir() and (_repository / "tasks" / "__init__.py").is_file():
    __path__.append(str(_repository))
