"""`loraflow human-eval export|import`: sample cases for raters, then aggregate and log their scores."""
import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `human-eval export` and `human-eval import`."""
    parser = subparsers.add_parser("human-eval", help="Export test cases for human rating; import and aggregate the ratings.")
    commands = parser.add_subparsers(dest="human_eval_command", required=True, metavar="ACTION")

    export = commands.add_parser("export", help="Write a stratified sample as CSV, JSONL and an HTML rating page.")
    export.add_argument("run_dir", metavar="RUN_DIR", help="Run folder with eval/predictions.jsonl.")
    export.add_argument("--n", type=int, default=100, help="Cases to sample (default 100).")
    export.add_argument("--out", required=True, help="Folder for human_eval.csv/.jsonl/.html.")
    export.add_argument("--seed", type=int, default=42, help="Sampling seed (default 42).")
    export.add_argument("--rubric", nargs="+", metavar="DIM", help="Dimensions to score: known names (accuracy, format, ...) "
                        "or name='question?'; default: field_accuracy/completeness/format/no_invention for JSON answers, "
                        "else accuracy/relevance/fluency/completeness/safety.")
    export.set_defaults(handler=run_export)

    imp = commands.add_parser("import", help="Validate rating files, aggregate, and log to the run's MLflow run.")
    imp.add_argument("run_dir", metavar="RUN_DIR", help="Run folder the cases were exported from.")
    imp.add_argument("files", metavar="FILES", nargs="+", help="Rating files (.csv, .jsonl or .json), one or more raters.")
    imp.set_defaults(handler=run_import)


def run_export(args: argparse.Namespace) -> int:
    """Export the sample and say where the files are."""
    from loraflow.tasks.evaluation.human_eval import export_human_eval

    result = export_human_eval(args.run_dir, n=args.n, out_dir=args.out, seed=args.seed, rubric=args.rubric)
    strata = ", ".join(f"{name} {count}" for name, count in result["strata"].items())
    print(f"exported {result['n']} cases ({strata}); rubric: {', '.join(result['rubric'])}")
    print(f"  rate in a browser: {result['html']}")
    print(f"  or fill in:        {result['csv']}  /  {result['jsonl']}")
    print(f"then: loraflow human-eval import {args.run_dir} RATING_FILES...")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import the ratings and print the per-dimension summary."""
    from loraflow.tasks.evaluation.human_eval import import_human_eval

    summary = import_human_eval(args.run_dir, args.files)
    print(f"{summary['n_ratings']} ratings of {summary['n_cases']} cases by {len(summary['raters'])} rater(s): {', '.join(summary['raters'])}")
    print(f"{'dimension':<13} {'mean':>5}  95% CI         alpha")
    for dim, stats in summary["dimensions"].items():
        alpha = "-" if stats["alpha_ordinal"] is None else f"{stats['alpha_ordinal']:.2f}"
        print(f"{dim:<13} {stats['mean']:5.2f}  [{stats['ci_low']:.2f}, {stats['ci_high']:.2f}]  {alpha:>6}")
    if summary["mlflow_run_id"]:
        print(f"logged to MLflow run {summary['mlflow_run_id']}")
    else:
        print(f"not logged to MLflow: {args.run_dir}/run.json names no mlflow_run_id")
    return 0
