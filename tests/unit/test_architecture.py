"""The house rules the layout promises, checked on the source: stage packages, no cycles, typed steps, a clean install."""
import ast
import importlib
import inspect
import io
import pkgutil
import re
import shutil
import subprocess
import sys
import tokenize
import tomllib
import types
import typing
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The folders installed under `loraflow` (pyproject's package-dir) and the package each becomes.
FOLDERS = {"loraflow": "loraflow", "tasks": "loraflow.tasks", "flows": "loraflow.flows", "schemas": "loraflow.schemas",
           "services": "loraflow.services"}
LONGEST_MODULE = 330  # "about 300 lines"
# The stage packages of tasks/ in their one order: each imports only those before it (README, "Layout"). tracking
# stands beside common: it imports only common, and every stage after common may import it.
STAGE_ORDER = ("common", "planning", "data", "training", "evaluation", "deploy", "feedback")
STAGES = {*STAGE_ORDER, "tracking", "steps"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _import_lines(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every import in a file, at the top or inside a function; `from a import b` gives a and a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    return {name for _, name in _import_lines(path)}


def test_tasks_is_one_package_per_stage():
    entries = sorted(p.name for p in (REPO / "tasks").iterdir() if p.name != "__pycache__")
    assert entries == ["__init__.py", "common", "data", "deploy", "evaluation", "feedback", "planning", "steps", "tracking",
                       "training"]


def test_tasks_import_no_flows_and_only_the_wrappers_import_prefect():
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("loraflow.tasks."):
            continue
        imported = _imports(path)
        if any(i.startswith("loraflow.flows") for i in imported):
            offenders.append(f"{name} imports a flow")
        if not name.startswith("loraflow.tasks.steps") and any(i == "prefect" or i.startswith("prefect.") for i in imported):
            offenders.append(f"{name} imports prefect outside tasks/steps")
    assert offenders == []


def _may_import(importer: str, imported: str) -> bool:
    """The stage order: a package imports only those before it; tracking only common, and anyone but common imports
    tracking; steps (the Prefect wrappers) import every stage and no stage imports steps."""
    if importer == imported or importer == "steps":
        return True
    if imported == "steps" or importer not in STAGES or imported not in STAGES:
        return False
    if importer == "tracking":
        return imported == "common"
    if imported == "tracking":
        return importer != "common"
    return STAGE_ORDER.index(imported) < STAGE_ORDER.index(importer)


def test_stage_packages_import_only_the_stages_before_them():
    offenders = []
    for name, path in _modules().items():
        parts = name.split(".")
        if parts[:2] != ["loraflow", "tasks"] or len(parts) < 4:  # the package __init__ files of tasks/ itself
            continue
        for line, imported in _import_lines(path):
            target = imported.split(".")
            if target[:2] == ["loraflow", "tasks"] and len(target) > 2 and not _may_import(parts[2], target[2]):
                offenders.append(f"tasks/{path.relative_to(REPO / 'tasks')}:{line} ({parts[2]}) imports {imported}")
    order = " <- ".join(STAGE_ORDER)
    assert not offenders, (f"imports against the stage order {order} (tracking beside common; steps may import all): "
                           + "; ".join(sorted(set(offenders))))


# Module names in comments, docstrings and docs: a path of a .py file in the repository or under a stage package, or a
# dotted loraflow module (with one of its names at most); and nothing may point outside the repository.
MODULE_PATH = re.compile(r"(?<![\w./-])((?:\w+/)+\w+\.py)\b")
DOTTED_MODULE = re.compile(r"\bloraflow\.(?:tasks|flows|schemas|services|cli)(?:\.\w+)+")
OUTSIDE = re.compile(r"\.\./shared\b")
ROOTS = (*FOLDERS, "tests", "benchmarks", "scripts")
DOCUMENTS = ("README.md", "benchmarks/README.md")  # benchmarks/RESULTS.md is a dated log: it names modules as they were


def _names_a_module(path: str) -> bool | None:
    """Whether a .py path names an existing file (None: not a path of this repository)."""
    parts = path.split("/")
    if parts[0] == "loraflow" and len(parts) > 1 and parts[1] in FOLDERS:  # the installed layout
        parts = parts[1:]
    if parts[0] in ROOTS:
        return (REPO / Path(*parts)).is_file()
    if parts[0] in STAGES:
        return (REPO / "tasks" / Path(*parts)).is_file()
    return None


def _names_a_dotted_module(dotted: str, modules: dict[str, Path]) -> bool:
    """loraflow.a.b names a module, or loraflow.a.b.name a function, class or constant of one."""
    if dotted in modules:
        return True
    module, _, name = dotted.rpartition(".")
    return module in modules and re.search(rf"^\s*(?:def|class) {name}\b|^{name}\s*[:=]|\bimport\b.*\b{name}\b",
                                           modules[module].read_text(), re.M) is not None


def test_comments_and_docs_name_only_modules_that_exist():
    modules = _modules()
    files = [p for root in ROOTS for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts]
    stale = []
    for path in [*files, *(REPO / d for d in DOCUMENTS)]:
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(REPO)}:{number}"
            stale += [f"{where} {m.group(0)} (outside the repository)" for m in OUTSIDE.finditer(line)]
            stale += [f"{where} {m.group(1)}" for m in MODULE_PATH.finditer(line) if _names_a_module(m.group(1)) is False]
            stale += [f"{where} {m.group(0)}" for m in DOTTED_MODULE.finditer(line)
                      if not _names_a_dotted_module(m.group(0), modules)]
    assert not stale, "names of modules that do not exist (or paths outside the repository): " + "; ".join(stale)


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}
    # A cycle shows as a module that can reach itself.
    cycles = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == start:
                cycles.append(start)
                break
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
    assert cycles == []


def test_modules_stay_short():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > LONGEST_MODULE}
    assert long == {}


def _untyped(annotation) -> bool:
    """A bare or Any-valued dict/list where a declared type belongs."""
    if annotation in (dict, list, typing.Any):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_untyped(a) for a in args if a is not type(None))
    if origin in (dict, list):
        return any(a in (dict, list, typing.Any) for a in args)
    return False


def _step_tasks() -> list[tuple[str, str, typing.Any]]:
    """(module, function name, Prefect task) of every @task defined in tasks/steps/."""
    from prefect import Task

    import loraflow.tasks.steps as steps

    found = []
    for info in pkgutil.iter_modules(steps.__path__, steps.__name__ + "."):
        module = importlib.import_module(info.name)
        found += [(info.name, name, value) for name, value in vars(module).items()
                  if isinstance(value, Task) and value.fn.__module__ == module.__name__]
    return found


def test_every_task_returns_a_declared_type():
    found, untyped = 0, []
    for module, name, task in _step_tasks():
        found += 1
        returned = typing.get_type_hints(task.fn).get("return", inspect.Signature.empty)
        if returned is inspect.Signature.empty or _untyped(returned):
            untyped.append(f"{module}.{name} -> {returned}")
    assert found >= 35 and untyped == []


def test_every_wrapper_is_named_like_its_task():
    unlike = [f"{module}.{name} is the task {task.name!r}" for module, name, task in _step_tasks()
              if task.name.replace("-", "_") != name]
    assert unlike == [], "name each wrapper function as its Prefect task (dashes as underscores): " + "; ".join(unlike)


def test_flows_call_steps_with_keywords():
    """A step call in a flow names its arguments once it has more than two (a recipe reads without the signatures)."""
    positional = []
    for path in (REPO / "flows").glob("*.py"):
        tree = ast.parse(path.read_text())
        steps = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module == "loraflow.tasks.steps" for alias in node.names}
        for node in ast.walk(tree):
            called = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
            if isinstance(called, ast.Attribute) and node.func.attr == "submit":  # step.submit(...)
                called = called.value
            if isinstance(called, ast.Name) and called.id in steps and len(node.args) > 2:
                positional.append(f"flows/{path.name}:{node.lineno} passes {len(node.args)} arguments by position")
    assert not positional, "name the arguments of these step calls: " + "; ".join(positional)


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert set(config["packages"]) == packages
    assert config["package-dir"] == {package: folder for folder, package in FOLDERS.items() if folder != "loraflow"}


@pytest.mark.slow
def test_the_wheel_installs_only_loraflow_at_the_top(tmp_path):
    source = tmp_path / "source"  # a copy: setuptools builds in the source tree (build/), which must stay clean
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)], check=True,
                   cwd=tmp_path, timeout=600)
    wheel = next(tmp_path.glob("loraflow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"loraflow", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for module in ("loraflow/tasks/training/train.py", "loraflow/flows/finetune.py", "loraflow/schemas/results/data.py",
                   "loraflow/services/feedback_api.py", "loraflow/services/serving/app.py", "loraflow/cli/__init__.py"):
        assert module in names


def test_the_images_copy_every_installed_folder():
    for dockerfile in ("Dockerfile.server", "Dockerfile.worker"):
        text = (REPO / "docker" / dockerfile).read_text()
        missing = [folder for folder in FOLDERS if f"COPY {folder} ./{folder}" not in text]
        assert missing == [], dockerfile


_LOOSE = re.compile(r"\b(dict|Dict|Mapping|Any)\b")
_REASON = re.compile(r"#\s*(dict|Any):\s*\S+(\s+\S+){2,}")  # "# dict: " or "# Any: " and at least three words


def _unexplained_loose_fields(source: str, where: str) -> list[str]:
    """Fields of the result types in `source` whose annotation holds a dict or Any without a reason on its line."""
    comments = {token.start[0]: token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    found = []
    for cls in ast.walk(ast.parse(source)):
        if not isinstance(cls, ast.ClassDef):
            continue
        for node in cls.body:
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            annotation = ast.get_source_segment(source, node.annotation) or ""
            if annotation.startswith(("ClassVar", "typing.ClassVar")) or not _LOOSE.search(annotation):
                continue
            if not _REASON.search(comments.get(node.end_lineno, "")):
                found.append(f"{where}:{node.lineno} {cls.name}.{node.target.id}: {annotation}")
    return found


def test_no_dict_or_any_in_a_result_type_without_its_reason():
    """A field of a result type (schemas/results) that holds a `dict`, `Mapping` or `Any` carries its reason on its
    line: a trailing comment `# dict: <why a mapping>` (or `# Any: <why>`) of at least three words, e.g.
    `counts: dict[str, Any]  # dict: each stage counts different things, read by name in the report`.
    Everything else is a typed field (a nested result type)."""
    folder = REPO / "schemas" / "results"
    unexplained = [line for path in sorted(folder.glob("*.py"))
                   for line in _unexplained_loose_fields(path.read_text(), str(path.relative_to(REPO)))]
    assert unexplained == [], "\n".join(unexplained)
    # The check itself: it finds a bare dict and an Any, and takes the reason when given.
    sample = ("class R:\n    a: dict[str, int]\n    b: Any = None  # a note\n"
              "    c: dict[str, int]  # dict: keyed by the task's own labels\n    d: list[str]\n")
    assert [line.split()[1] for line in _unexplained_loose_fields(sample, "sample")] == ["R.a:", "R.b:"]
