"""`loraflow run` (the whole pipeline) and `loraflow data` (data stages only)."""
import json
import logging
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add `run` and `data`."""
    run = subparsers.add_parser("run", help="run the whole pipeline: data -> train -> evaluate -> register")
    _common(run)
    run.set_defaults(handler=handle_run)
    data = subparsers.add_parser("data", help="run only the data stages into OUT/data/")
    _common(data)
    data.add_argument("--pilot", type=int, metavar="N", help="validate and report on a random sample of N records")
    data.set_defaults(handler=handle_data)


def _common(parser) -> None:
    parser.add_argument("config", help="pipeline YAML (see examples/quickstart/pipeline.yaml)")
    parser.add_argument("--input", help="input data file (overrides data.path)")
    parser.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=5")


def load(args, extra_overrides: list[str] | None = None):
    """Load and check the config, printing guide-range warnings; fail before anything runs."""
    from loraflow.tasks.common.config_files import load_pipeline_config
    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.data.input_file import checked_input

    config, warnings = load_pipeline_config(args.config, list(args.set) + (extra_overrides or []))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # Existence, readability, format and emptiness are known now: before any Prefect server starts, not minutes later.
    input_path = checked_input(config.data, args.input)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LoraflowError(f"--out {out} is a file; pass a folder for the run (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LoraflowError(f"--out {out}: cannot create the run folder ({error.strerror}: {error.filename}); pass a "
                            "folder you can write to") from None
    return config, str(Path(input_path).resolve()), str(out.resolve())


class _UserErrorWithoutTraceback(logging.Filter):
    """Prefect logs a failed run with its traceback; for a user error the one-line message is the whole story."""

    def filter(self, record: logging.LogRecord) -> bool:
        from loraflow.tasks.common.errors import LoraflowError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, LoraflowError):
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"{type(error).__name__}: {error}", ()
        return True


def _run_flow(flow_fn, **kwargs):
    """Run a flow and unwrap a LoraflowError raised inside it into the CLI's one-line message."""
    from loraflow.tasks.common.errors import LoraflowError

    from loraflow.cli._prefect_server import use_own_temporary_server

    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_UserErrorWithoutTraceback())
    use_own_temporary_server()  # a Ctrl-C to the whole process group must not stop it before the flow has ended

    try:
        state = flow_fn(**kwargs, return_state=True)
    except RuntimeError as error:
        if "ephemeral Prefect API server" not in str(error):
            raise
        from loraflow.tasks.common.settings import loraflow_home

        raise LoraflowError(f"the temporary Prefect server did not start ({str(error).splitlines()[0]}); see "
                            f"{loraflow_home() / 'prefect-server.log'}, or point PREFECT_API_URL at a running server") from None
    if state.is_completed():
        return state.result()
    try:
        state.result()
    except LoraflowError:
        raise
    except Exception as error:  # a task's LoraflowError arrives wrapped or re-raised; find it
        cause = error
        while cause is not None and not isinstance(cause, LoraflowError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise LoraflowError(f"pipeline failed in flow {flow_fn.name}: {type(error).__name__}: {error}") from error
    raise LoraflowError(f"pipeline ended in state {state.name}")


def handle_run(args) -> int:
    """Run the finetune flow and print the outcome."""
    config, input_path, out_dir = load(args)
    from loraflow.flows.finetune import finetune
    from loraflow.schemas.results import RunOutcome
    from loraflow.tasks.tracking.headline import gate_verdict

    result = _run_flow(finetune, config=config, input_path=input_path, out_dir=out_dir)
    outcome = RunOutcome.model_validate(result.get("outcome") or {})
    print("\n=== loraflow run finished ===")
    print(f"run folder:     {out_dir}")
    print(f"{outcome.success_metric}: base {_fmt(outcome.base)} -> fine-tuned {_fmt(outcome.candidate)}"
          f" (task card criteria {'met' if outcome.criteria_met else 'NOT met'})")
    _print_fields(outcome.fields)
    for criterion in outcome.criteria:
        op = ">=" if criterion.higher_is_better else "<="
        print(f"  task card {criterion.metric} {op} {criterion.threshold:g}: {_fmt(criterion.value)}"
              f" {'met' if criterion.met else 'NOT met'}")
    decision = outcome.promotion
    print(f"promotion gate: {gate_verdict(bool(decision and decision.promote), decision.reasons if decision else []).lower()}")
    for reason in [*decision.failures, *decision.warnings] if decision else []:
        print(f"  {reason}")
    registered = outcome.registered_model
    if registered:
        print(f"registered:     {registered.name} version {registered.version} ({', '.join(registered.aliases or ['no alias'])})")
    print(f"MLflow run id:  {result.get('mlflow_run_id')}  ({result.get('mlflow_tracking_uri')})")
    print(f"Prefect run id: {result.get('prefect_flow_run_id')}")
    from loraflow.tasks.tracking.links import mlflow_ui_lines, prefect_ui_lines

    for label, lines in (("MLflow UI:", mlflow_ui_lines(str(result.get("mlflow_tracking_uri")), result.get("mlflow_experiment_id"),
                                                        result.get("mlflow_run_id"))),
                         ("Prefect UI:", prefect_ui_lines(os.environ.get("PREFECT_API_URL"), os.environ.get("PREFECT_HOME"),
                                                          result.get("prefect_flow_run_id")))):
        for i, line in enumerate(lines):
            print(f"{label if i == 0 else '':<16}{line}")
    return 0


def handle_data(args) -> int:
    """Run only the data flow and print the counts."""
    config, input_path, out_dir = load(args, [f"data.pilot={args.pilot}"] if args.pilot is not None else None)
    from loraflow.flows.data import prepare_data

    result = _run_flow(prepare_data, config=config, input_path=input_path, out_dir=out_dir)
    report = json.loads(Path(result.report.report_json).read_text())
    keys = ("input", "kept", "quarantined", "removed", "review", "augmented", "train", "val", "test")
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2, ensure_ascii=False))
    print(f"data written to {Path(out_dir) / 'data'}")
    return 0


def _print_fields(rows: list[dict]) -> None:
    """Per answer field: the fine-tuned model beside the base model and the baselines (classical TF-IDF + logistic
    regression first; it answers categorical fields only, so text fields show n/a there)."""
    if not rows:
        return
    labels = [label for label in ("base", "classical", "majority", "stratified", "champion", "candidate")
              if any(label in row for row in rows)]
    names = {"candidate": "fine-tuned"}
    print("per answer field (test split):".ljust(34) + "".join(names.get(label, label).rjust(12) for label in labels))
    for row in rows:
        print(f"  {row['field']} {row['stat'].replace('_', ' ')}".ljust(34) + "".join(_fmt(row.get(label)).rjust(12) for label in labels))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
