"""`loraflow feedback serve|export`: run the feedback API, or export pending feedback as training data."""
import argparse
import json


def register(subparsers) -> None:
    """Add `feedback serve` and `feedback export`."""
    parser = subparsers.add_parser("feedback", help="The feedback API and its export to training data.")
    commands = parser.add_subparsers(dest="feedback_command", required=True, metavar="SUBCOMMAND")

    serve = commands.add_parser("serve", help="Run the feedback HTTP API (token from $LORAFLOW_FEEDBACK_TOKEN).")
    _add_config_args(serve)
    serve.add_argument("--host", help="Interface to bind (default: feedback.host, 127.0.0.1).")
    serve.add_argument("--port", type=int, help="Port (default: feedback.port, 8088).")
    serve.add_argument("--insecure-no-auth", action="store_true",
                       help="Serve without a bearer token when $LORAFLOW_FEEDBACK_TOKEN is unset (local tests only).")
    serve.set_defaults(handler=serve_feedback)

    export = commands.add_parser("export", help="Write pending feedback (or one batch) as training records + a relabel queue.")
    _add_config_args(export)
    export.add_argument("--out", required=True, help="Folder for feedback.jsonl and relabel_queue.jsonl.")
    export.add_argument("--batch-id", help="Export this retrain batch again instead of claiming the pending feedback.")
    export.set_defaults(handler=export_feedback_command)

    badcases = commands.add_parser("import-badcases", help="Queue a run's evaluation badcases for relabelling (stored once).")
    _add_config_args(badcases)
    badcases.add_argument("run_dir", help="Run folder with eval/badcases.jsonl and run.json.")
    badcases.set_defaults(handler=import_badcases_command)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="Pipeline YAML whose `feedback` section to use (default: built-in defaults).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config field, e.g. --set feedback.trigger_threshold=20 (repeatable).")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the feedback database (overrides feedback.database_url).")


def _feedback_config(args):
    from loraflow.schemas.config.feedback import FeedbackConfig

    config = FeedbackConfig()
    if args.config or args.overrides:
        from loraflow.tasks.common.config_files import load_config

        config = load_config(args.config, args.overrides).feedback
    flags = {"database_url": args.database_url, "host": getattr(args, "host", None), "port": getattr(args, "port", None)}
    flags = {key: value for key, value in flags.items() if value is not None}
    if flags:  # validated like the config file's values (a port past 65535 is refused here, not by the socket)
        from pydantic import ValidationError

        from loraflow.tasks.common.errors import LoraflowError

        try:
            config = FeedbackConfig.model_validate({**config.model_dump(), **flags})
        except ValidationError as error:
            problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in error.errors())
            raise LoraflowError(f"invalid feedback settings: {problems}") from None
    return config


def serve_feedback(args) -> int:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    from loraflow.services.feedback_api import create_app

    config = _feedback_config(args)
    host, port = config.host, config.port
    app = create_app(config, insecure_no_auth=args.insecure_no_auth)
    where = app.state.store.engine.url.render_as_string(hide_password=True)
    print(f"feedback API on http://{host}:{port} (OpenAPI: /openapi.json, docs: /docs), database {where}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def export_feedback_command(args) -> int:
    """Export and print the summary as JSON."""
    from loraflow.tasks.feedback.export import export_feedback

    config = _feedback_config(args)
    summary = export_feedback(config.database_url, args.out, batch_id=args.batch_id).to_dict()
    shown = {k: v for k, v in summary.items() if k not in ("feedback_ids", "run_dir")}
    print(json.dumps(shown | {"feedback_count": len(summary["feedback_ids"])}, indent=2))
    return 0


def import_badcases_command(args) -> int:
    """Store the run's badcases as `down`-rated feedback and print the counts."""
    from loraflow.tasks.feedback.badcase_import import import_badcases

    print(json.dumps(import_badcases(args.run_dir, _feedback_config(args).database_url), indent=2))
    return 0
