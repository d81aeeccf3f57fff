"""`loraflow promote`, `loraflow rollback` and `loraflow versions`: move the `champion` alias and show versions."""
import json


def register(subparsers) -> None:
    """Add `promote`, `rollback` and `versions`."""
    common = {"help": "registered model name (default: the only one in the registry)"}
    promote = subparsers.add_parser("promote", help="point the `champion` alias at a registered model version")
    promote.add_argument("--model", **common)
    promote.add_argument("--version", required=True, help="model version to make champion")
    promote.add_argument("--reason", required=True, help="why (recorded on the version and in the model's history)")
    promote.set_defaults(handler=handle_promote)
    rollback = subparsers.add_parser("rollback", help="move `champion` back to the previous (or a named) version")
    rollback.add_argument("--model", **common)
    rollback.add_argument("--to", dest="to_version", help="version to restore (default: the champion before this one)")
    rollback.add_argument("--reason", required=True, help="why (recorded on both versions and in the model's history)")
    rollback.set_defaults(handler=handle_rollback)
    versions = subparsers.add_parser("versions", help="list registered model versions with aliases and lineage tags")
    versions.add_argument("--model", **common)
    versions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    versions.set_defaults(handler=handle_versions)
    for parser in (promote, rollback, versions):
        parser.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI or the embedded store)")


def _name(args) -> str:
    """The --model value, else the registry's only model."""
    from loraflow.tasks.deploy.registry import only_model_name

    return args.model or only_model_name(tracking_uri=args.tracking_uri)


def handle_promote(args) -> int:
    """Promote a version to champion and print the event."""
    from loraflow.tasks.deploy.registry import promote

    name = _name(args)
    event = promote(name, args.version, args.reason, tracking_uri=args.tracking_uri)
    previous = f" (was {event.previous})" if event.previous else ""
    print(f"{name}: champion -> version {event.version}{previous}; models:/{name}@champion")
    return 0


def handle_rollback(args) -> int:
    """Roll the champion back and print the event."""
    from loraflow.tasks.deploy.registry import rollback

    name = _name(args)
    event = rollback(name, args.to_version, args.reason, tracking_uri=args.tracking_uri)
    print(f"{name}: champion rolled back to version {event.version} (was {event.previous}); models:/{name}@champion")
    return 0


def handle_versions(args) -> int:
    """Print every version of the model, newest first."""
    from loraflow.tasks.deploy.registry import champion_history, list_versions

    name = _name(args)
    rows = list_versions(name, tracking_uri=args.tracking_uri)
    if args.json:
        print(json.dumps({"name": name, "versions": rows, "history": champion_history(name, tracking_uri=args.tracking_uri)}, indent=2))
        return 0
    print(f"{'version':>7}  {'aliases':<20}  {'run id':<32}  lineage")
    for row in rows:
        tags = row["tags"]
        lineage = " ".join(f"{key}={tags[key]}" for key in sorted(tags) if key != "run_id")
        print(f"{row['version']:>7}  {','.join(row['aliases']) or '-':<20}  {row['run_id'] or '-':<32}  {lineage[:120]}")
    return 0
