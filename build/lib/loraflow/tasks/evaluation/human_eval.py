"""Human evaluation: export a stratified sample for raters, import their scores, aggregate and log them."""
import csv
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from loraflow.schemas.run_folder import RunFolder
from loraflow.schemas.human_eval import RATING_META_COLUMNS, rating_schema
from loraflow.tasks.evaluation.agreement import krippendorff_alpha, mean_confidence_interval
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.evaluation.human_eval_page import render_rating_page
from loraflow.tasks.evaluation.human_eval_rubric import choose_rubric
from loraflow.tasks.common.jsonl import iter_jsonl, write_jsonl
from loraflow.tasks.tracking.run_extras import log_to_run



def rubric_dimensions(columns) -> tuple[str, ...]:
    """The rubric dimensions of a rating file: every column that is not id, rater, comment or case text."""
    return tuple(str(c) for c in columns if str(c) not in RATING_META_COLUMNS and not str(c).startswith(("_", "Unnamed")))


def case_slice(row: dict) -> str:
    """The stratum of a test case: metadata `slice`, else `language`, else 'all'."""
    metadata = row.get("metadata") or {}
    return str(metadata.get("slice") or metadata.get("language") or "all")


def prompt_text(messages: list[dict]) -> str:
    """The prompt turns as text a rater can read (role prefixes only when there is more than one turn)."""
    turns = [m for m in messages if m.get("content")]
    if len(turns) == 1:
        return str(turns[0]["content"])
    return "\n\n".join(f"[{m.get('role', '?')}] {m['content']}" for m in turns)


def read_predictions(run_dir: str | Path) -> list[dict]:
    """The candidate's predictions of a run folder (RUN_DIR/eval/predictions.jsonl)."""
    path = RunFolder(run_dir).eval / "predictions.jsonl"
    if not path.exists():
        raise LoraflowError(f"{path} does not exist; run the evaluation first (`loraflow run CONFIG --out {run_dir}`).")
    return list(iter_jsonl(path))


def stratified_sample(rows: list[dict], n: int, seed: int = 42) -> list[dict]:
    """A seeded sample of n rows, allocated to strata in proportion to their size, every stratum at least once when n allows."""
    strata: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: str(r["id"])):
        strata[case_slice(row)].append(row)
    n = min(n, len(rows))
    names = sorted(strata, key=lambda s: (-len(strata[s]), s))
    # Largest-remainder proportional quotas, then one case for every stratum that got none (taken from the largest).
    shares = {s: n * len(strata[s]) / len(rows) for s in names}
    quota = {s: int(shares[s]) for s in names}
    for s in sorted(names, key=lambda s: (-(shares[s] - quota[s]), s))[: n - sum(quota.values())]:
        quota[s] += 1
    covered = names[:n]  # with fewer cases than strata, the largest strata get one each
    for s in covered:
        if quota[s] == 0:
            donor = max(names, key=lambda d: quota[d] - (d in covered))  # never leaves a covered stratum empty
            quota[donor] -= 1
            quota[s] = 1
    rng = random.Random(seed)
    sample = [row for s in sorted(names) for row in rng.sample(strata[s], quota[s])]
    rng.shuffle(sample)  # raters should not see the cases grouped by slice
    return sample


def export_human_eval(run_dir: str, n: int, out_dir: str, seed: int = 42, rubric: list[str] | None = None) -> dict:
    """Write a seeded, slice-stratified sample of test cases with blank rubrics as CSV, JSONL and an HTML rating page.

    Args:
        rubric: dimensions as `name` or `name=question`; default the task card's `rubric` (recorded in
            RUN_DIR/eval/metrics.json), else the JSON rubric for JSON answers, else the general one.
    """
    if n < 1:
        raise LoraflowError(f"--n is {n}; ask for at least 1 case to rate.")
    sample = stratified_sample(read_predictions(run_dir), n, seed)
    if not rubric:
        metrics = RunFolder(run_dir).eval / "metrics.json"
        rubric = (json.loads(metrics.read_text(encoding="utf-8")).get("rubric") if metrics.is_file() else None) or None
    questions = choose_rubric([str(row.get("reference") or "") for row in sample], rubric)
    cases = [
        {
            "id": str(row["id"]),
            "slice": case_slice(row),
            "input": prompt_text(row.get("messages") or []),
            "reference": str(row.get("reference") or ""),
            "output": str(row.get("prediction") or ""),
            "rater": "",
            **{dim: None for dim in questions},
            "comment": "",
        }
        for row in sample
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path, html_path = out / "human_eval.csv", out / "human_eval.jsonl", out / "human_eval.html"
    # utf-8-sig: spreadsheet programs then show Chinese text correctly.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(cases[0]) if cases else ["id", "rater", *questions, "comment"])
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in case.items()} for case in cases)
    write_jsonl(jsonl_path, cases)
    html_path.write_text(render_rating_page(cases, questions, title=f"Human evaluation: {Path(run_dir).resolve().name}"),
                         encoding="utf-8")
    return {
        "n": len(cases),
        "rubric": list(questions),
        "strata": dict(sorted(Counter(c["slice"] for c in cases).items())),
        "csv": str(csv_path),
        "jsonl": str(jsonl_path),
        "html": str(html_path),
    }


def _load_rating_table(path: Path) -> pd.DataFrame:
    """A rating file as a DataFrame indexed by its line number in the file (CSV, JSONL or a JSON list)."""
    if not path.exists():
        raise LoraflowError(f"{path} does not exist; pass the rating files the raters saved.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            frame.index = frame.index + 2  # line 1 is the header
        elif suffix in (".jsonl", ".json"):
            text = path.read_text(encoding="utf-8-sig")
            if suffix == ".json" or text.lstrip().startswith("["):
                rows = json.loads(text)
                lines = list(range(1, len(rows) + 1))
            else:
                lines, rows = [], []
                for number, line in enumerate(text.splitlines(), start=1):
                    if line.strip():
                        lines.append(number)
                        rows.append(json.loads(line))
            frame = pd.DataFrame(rows, index=lines)
        else:
            raise LoraflowError(f"{path} has an unknown extension '{suffix}'; save ratings as .csv, .jsonl or .json.")
    except (json.JSONDecodeError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise LoraflowError(f"{path} cannot be read ({error}); re-save it from the rating page or as UTF-8 CSV/JSONL.") from error
    if "id" not in frame.columns or not rubric_dimensions(frame.columns):
        raise LoraflowError(f"{path} lacks an id column or score columns; use the file written by `loraflow human-eval export`.")
    return frame


def _as_score(value):
    """Blank -> None; integral numbers and numeric strings ('4', '4.0') -> int; anything else unchanged for pandera to reject."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else value


def validate_rating_file(path: str | Path) -> pd.DataFrame:
    """Validate one rating file against its rubric's schema; rows with every score blank are unrated and dropped."""
    path = Path(path)
    frame = _load_rating_table(path)
    dimensions = rubric_dimensions(frame.columns)
    for dim in dimensions:
        frame[dim] = frame[dim].map(_as_score).astype(object)
    frame = frame[frame[list(dimensions)].notna().any(axis=1)].copy()
    frame["id"] = frame["id"].astype(str).str.strip()
    # A blank rater column means "this file's rater": the file name says who.
    rater = frame["rater"].astype(str).str.strip() if "rater" in frame else pd.Series("", index=frame.index)
    frame["rater"] = rater.where(rater.ne("") & rater.ne("nan") & rater.ne("None"), path.stem)
    frame["comment"] = frame["comment"].fillna("").astype(str) if "comment" in frame else ""
    try:
        return rating_schema(dimensions).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        located = cases[cases["index"].notna()].drop_duplicates(["column", "index"])
        if located.empty:
            raise LoraflowError(f"{path} does not match the rating schema ({errors}); use the exported file's columns.") from errors
        first = located.iloc[0]
        line, column = int(first["index"]), first["column"]
        label = f"line {line}" if path.suffix.lower() == ".csv" else f"row at line {line}"
        more = f" (and {len(located) - 1} more problem(s))" if len(located) > 1 else ""
        value = first["failure_case"]
        value = value.item() if hasattr(value, "item") else value  # numpy scalar -> plain Python for the message
        shown = "a blank" if value is None or (isinstance(value, float) and pd.isna(value)) else repr(value)
        expected = "an integer score 1-5" if column in dimensions else "a non-empty value"
        raise LoraflowError(
            f"{path} {label}: field '{column}' has {shown}, expected {expected};"
            f" fix it, or blank all {len(dimensions)} scores to skip the case{more}."
        ) from errors


def _check_ratings(ratings: pd.DataFrame, known: dict[str, str], predictions_path: Path) -> None:
    """Every rated id must be a test case of the run, and no rater may score a case twice."""
    unknown = ratings[~ratings["id"].isin(known)]
    if not unknown.empty:
        row = unknown.iloc[0]
        raise LoraflowError(
            f"{row['_file']} line {row['_line']}: id '{row['id']}' is not a test case in {predictions_path}; "
            "rate the cases exported from this run folder."
        )
    duplicated = ratings[ratings.duplicated(["id", "rater"], keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        places = ", ".join(
            f"{r['_file']} line {r['_line']}" for _, r in duplicated[(duplicated["id"] == first["id"]) & (duplicated["rater"] == first["rater"])].iterrows()
        )
        raise LoraflowError(f"rater '{first['rater']}' scored case '{first['id']}' more than once ({places}); keep one of these rows.")


def aggregate_ratings(ratings: pd.DataFrame, dimensions: tuple[str, ...], seed: int = 0) -> dict:
    """Mean and 95% bootstrap CI per dimension (over cases, raters averaged), per slice, and Krippendorff's alpha."""
    summary: dict = {
        "n_ratings": int(len(ratings)),
        "n_cases": int(ratings["id"].nunique()),
        "raters": sorted(ratings["rater"].unique().tolist()),
        "dimensions": {},
        "by_slice": {},
    }
    per_case = ratings.groupby("id")[list(dimensions)].mean()
    shared = ratings.groupby("id")["rater"].nunique()
    summary["n_shared_cases"] = int((shared >= 2).sum())
    for dim in dimensions:
        stats = mean_confidence_interval(per_case[dim].tolist(), seed=seed)
        units: dict[str, dict[str, float]] = defaultdict(dict)
        for case_id, rater, score in ratings[["id", "rater", dim]].itertuples(index=False):
            units[case_id][rater] = float(score)
        stats["alpha_ordinal"] = krippendorff_alpha(units, "ordinal") if summary["n_shared_cases"] else None
        stats["alpha_interval"] = krippendorff_alpha(units, "interval") if summary["n_shared_cases"] else None
        summary["dimensions"][dim] = stats
    for slice_name, group in ratings.groupby("slice"):
        case_means = group.groupby("id")[list(dimensions)].mean()
        summary["by_slice"][str(slice_name)] = {"n_cases": int(len(case_means)), **{d: float(case_means[d].mean()) for d in dimensions}}
    return summary


def human_metrics(summary: dict) -> dict[str, float]:
    """The MLflow metrics of an aggregate: human.<dim>.mean/ci_low/ci_high/alpha plus counts."""
    metrics = {"human.n_cases": summary["n_cases"], "human.n_ratings": summary["n_ratings"], "human.n_raters": len(summary["raters"])}
    for dim, stats in summary["dimensions"].items():
        for key, name in (("mean", "mean"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("alpha_ordinal", "alpha")):
            if stats.get(key) is not None:
                metrics[f"human.{dim}.{name}"] = stats[key]
    return metrics


def import_human_eval(run_dir: str, files: list[str]) -> dict:
    """Validate rating files, aggregate them, save RUN_DIR/eval/human_eval.json and log everything to the run's MLflow run."""
    if not files:
        raise LoraflowError("no rating files given; pass the CSV/JSONL files the raters saved.")
    predictions_path = RunFolder(run_dir).eval / "predictions.jsonl"
    known = {str(row["id"]): case_slice(row) for row in read_predictions(run_dir)}
    frames = []
    for file in files:
        frame = validate_rating_file(file)
        frames.append(frame.assign(_file=str(file), _line=frame.index))
    dimensions = rubric_dimensions(frames[0].columns)
    for file, frame in zip(files, frames):
        if set(rubric_dimensions(frame.columns)) != set(dimensions):
            raise LoraflowError(f"{file} scores {', '.join(rubric_dimensions(frame.columns))} but {files[0]} scores "
                                f"{', '.join(dimensions)}; import ratings of one export (one rubric) together.")
    ratings = pd.concat(frames, ignore_index=True)
    if ratings.empty:
        raise LoraflowError(f"no scored rows in {', '.join(map(str, files))}; fill in the scores for at least one case.")
    _check_ratings(ratings, known, predictions_path)
    ratings["slice"] = ratings["id"].map(known)
    summary = {"files": [str(f) for f in files], "rubric": list(dimensions), **aggregate_ratings(ratings, dimensions)}
    eval_dir = RunFolder(run_dir).eval
    columns = ["id", "rater", *dimensions, "comment", "slice"]
    write_jsonl(eval_dir / "human_ratings.jsonl", ratings[columns].to_dict(orient="records"))
    summary["mlflow_run_id"] = log_to_run(
        run_dir,
        metrics=human_metrics(summary),
        dicts={"human_eval/aggregate.json": summary},
        files={"human_eval": eval_dir / "human_ratings.jsonl"},
    )
    (eval_dir / "human_eval.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary
