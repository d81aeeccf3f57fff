"""`loraflow report RUN_DIR`: write the self-contained evaluation report of a run folder."""
import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `report`."""
    parser = subparsers.add_parser("report", help="Write RUN_DIR/eval/report.html (metrics, slices, loss curves, worst cases, decision).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="Run folder with eval/metrics.json.")
    parser.add_argument("--no-mlflow", action="store_true", help="Do not attach the report to the run's MLflow run.")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Write the report, attach it to MLflow unless told not to, and print where it is."""
    from pathlib import Path

    from loraflow.tasks.evaluation.report import log_eval_report, write_eval_report

    path = write_eval_report(args.run_dir)
    print(f"report: {Path(path).resolve().as_uri()}")
    if not args.no_mlflow and (run_id := log_eval_report(args.run_dir, path)):
        print(f"attached to MLflow run {run_id} as report/report.html")
    return 0
