"""`loraflow config schema` and `loraflow config check FILE`."""
import json
import sys


def register(subparsers) -> None:
    """Add `config schema` and `config check`."""
    parser = subparsers.add_parser("config", help="print the config's JSON schema or check a config file")
    sub = parser.add_subparsers(dest="config_command", required=True)
    schema = sub.add_parser("schema", help="print the JSON schema of the pipeline config")
    schema.set_defaults(handler=handle_schema)
    check = sub.add_parser("check", help="validate a config file and show warnings")
    check.add_argument("file")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    check.set_defaults(handler=handle_check)


def handle_schema(args) -> int:
    """Print the JSON schema of PipelineConfig."""
    from loraflow.schemas.config import PipelineConfig

    print(json.dumps(PipelineConfig.model_json_schema(), indent=2))
    return 0


def handle_check(args) -> int:
    """Validate a config: exit 1 with every problem, else print warnings and 'ok'."""
    from loraflow.schemas.config import recommendation_warnings
    from loraflow.tasks.common.config_files import load_config

    config = load_config(args.file, args.set)
    for warning in recommendation_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {args.file} is a valid loraflow config")
    return 0
