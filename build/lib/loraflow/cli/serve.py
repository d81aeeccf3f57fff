"""`loraflow serve [--model models:/NAME@champion | PATH] [--port P]`: the OpenAI-compatible server."""
import os
import shlex


def register(subparsers) -> None:
    """Add `serve`."""
    parser = subparsers.add_parser("serve", help="Serve a model over an OpenAI-compatible API (/v1/chat/completions).")
    parser.add_argument("--model", default=os.environ.get("LORAFLOW_SERVE_MODEL"),
                        help="models:/NAME@champion, models:/NAME/VERSION or a model folder (default: $LORAFLOW_SERVE_MODEL, "
                        "serve.model, else the champion of the --config's registered model).")
    parser.add_argument("--config", help="Pipeline YAML whose `serve` section and registered model name to use.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config field, e.g. --set serve.max_batch_size=16 (repeatable).")
    parser.add_argument("--host", help="Interface to bind (default 127.0.0.1; 0.0.0.0 in containers).")
    parser.add_argument("--port", type=int, help="TCP port (default 8000).")
    parser.add_argument("--backend", choices=["auto", "builtin", "vllm"], help="auto: vLLM where installed, else built-in.")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="Device of the built-in backend.")
    parser.add_argument("--served-model-name", help="Model id clients send (default: registered name or folder name).")
    parser.add_argument("--print-vllm-command", action="store_true", help="Print the `vllm serve` command line and exit.")
    parser.add_argument("--download-to", metavar="DIR", help="Only fetch the model as a plain folder under DIR (DIR/NAME/VERSION), "
                        "print its path and exit (init step for the vLLM container).")
    parser.set_defaults(handler=run_serve)


def serve_config_from_args(args):
    """The ServeConfig in force: config file section, then --set, then the explicit flags; plus the model URI."""
    from pydantic import ValidationError

    from loraflow.schemas.config.serve import ServeConfig
    from loraflow.tasks.common.errors import LoraflowError

    serve_data: dict = {}
    registered_name = None
    if args.config or args.overrides:
        from loraflow.tasks.common.config_files import load_config

        pipeline = load_config(args.config, args.overrides)
        if hasattr(pipeline, "serve"):
            serve_data = pipeline.serve.model_dump()
        # The registry name defaults to the task card's name (as the deploy step registers it).
        registered_name = pipeline.deploy.registered_model_name or pipeline.task_card.name
    flags = {"model": args.model, "host": args.host, "port": args.port, "backend": args.backend,
             "device": args.device, "served_model_name": args.served_model_name}
    serve_data.update({k: v for k, v in flags.items() if v is not None})
    try:
        config = ServeConfig.model_validate(serve_data)
    except ValidationError as error:
        problems = "; ".join(f"serve.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise LoraflowError(f"invalid serve settings: {problems}") from None
    model = config.model or (f"models:/{registered_name}@champion" if registered_name else None)
    if model is None:
        raise LoraflowError("no model to serve: pass --model models:/NAME@champion or a model folder (or set serve.model)")
    from loraflow.services.serving.source import parse_model_uri

    parse_model_uri(model)  # a malformed URI fails here, before anything loads
    return config, model


def run_serve(args) -> int:
    """Run the server in the foreground until interrupted."""
    config, model = serve_config_from_args(args)
    if args.download_to:
        from loraflow.services.serving.source import materialize_model

        print(materialize_model(model, args.download_to))
        return 0
    if args.print_vllm_command:
        from loraflow.services.serving.source import served_model_name
        from loraflow.services.serving.vllm_backend import build_vllm_command

        print(shlex.join(build_vllm_command(model, config, config.served_model_name or served_model_name(model))))
        return 0
    from loraflow.services.serving.server import run_server

    return run_server(config, model)
