"""`loraflow sweep`: run a grid of config overrides as child runs and report the best by validation loss."""


def register(subparsers) -> None:
    """Add `sweep`."""
    parser = subparsers.add_parser("sweep", help="run a grid of overrides (e.g. learning rate x LoRA rank) as child runs")
    parser.add_argument("config", help="pipeline YAML (see examples/quickstart/pipeline.yaml)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="values to try for one config field, e.g. train.learning_rate=1e-4,2e-4 (repeat for a grid)")
    parser.add_argument("--input", help="input data file (overrides data.path)")
    parser.add_argument("--out", default="runs/sweep", help="sweep folder; one trial folder inside per run (default runs/sweep)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field for every trial")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="trials run at the same time (default 1: one after another, as on one CPU or one GPU)")
    parser.set_defaults(handler=handle_sweep)


def handle_sweep(args) -> int:
    """Run the sweep flow and print the trials, best first."""
    from loraflow.cli.run import _run_flow, load
    from loraflow.tasks.common.errors import LoraflowError
    from loraflow.tasks.training.sweep import parse_grid, render_summary

    grid = parse_grid(args.grid)
    if args.concurrency < 1:
        raise LoraflowError(f"--concurrency {args.concurrency} must be 1 or more")
    config, input_path, out_dir = load(args)
    from loraflow.flows.sweep import sweep

    result = _run_flow(sweep, config=config, grid=grid, input_path=input_path, out_dir=out_dir,
                       concurrency=args.concurrency)
    print("\n=== loraflow sweep finished ===")
    print(render_summary(result["trials"], result["best"]))
    best = result["best"]
    print(f"\nbest: {best['name']} ({' '.join(best['overrides'])}), val loss {best['val_loss']:.4f}" if best
          else "\nbest: none - no trial logged a validation loss (is there a val split and an evaluation step?)")
    print(f"summary: {result['summary']}   MLflow parent run: {result['parent_run_id']} ({result['tracking_uri']})")
    return 0 if best else 1
