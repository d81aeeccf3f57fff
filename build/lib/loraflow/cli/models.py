"""`loraflow models [--task code|chinese|general] [--json]`: recommended base models with size and licence."""
import json


def register(subparsers) -> None:
    """Add `models`."""
    parser = subparsers.add_parser("models", help="Recommended base models by task type and language, with size and licence.")
    parser.add_argument("--task", choices=["code", "chinese", "general"], help="Only models for this task type.")
    parser.add_argument("--language", choices=["en", "zh"], help="Only models that handle this language.")
    parser.add_argument("--json", action="store_true", help="Print a JSON list.")
    parser.add_argument("--check", metavar="MODEL", help="Check this model's licence (hub id or local folder) against --use.")
    parser.add_argument("--use", choices=["research", "internal", "commercial"], default="commercial",
                        help="Intended use for --check (default: commercial).")
    parser.set_defaults(handler=list_models)


def list_models(args) -> int:
    """Print the catalogue (or one model's licence check); exit 0."""
    from loraflow.tasks.planning.model_advice import licence_conflicts, read_licence, recommend_models

    if args.check:
        licence, name, source = read_licence(args.check)
        warnings = licence_conflicts(args.check, args.use)
        if args.json:
            print(json.dumps({"model": args.check, "licence": licence, "licence_name": name, "source": source,
                              "intended_use": args.use, "warnings": warnings}, ensure_ascii=False))
        else:
            print(f"{args.check}: licence {licence or 'unknown'} (from {source})")
            print("\n".join(warnings) or f"no conflict with intended use {args.use}")
        return 0
    models = recommend_models(args.task, args.language)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], ensure_ascii=False))
        return 0
    print(f"{'task':8s} {'model':38s} {'size':>6s}  {'licence':14s} {'languages':9s} why")
    for m in models:
        print(f"{m.task:8s} {m.name:38s} {m.params_b:5.1f}B  {m.licence:14s} {','.join(m.languages):9s} {m.why}")
    return 0
