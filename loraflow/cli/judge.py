"""`loraflow judge RUN_DIR`: score the candidate's answers with an LLM judge on an OpenAI-compatible endpoint."""
import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `judge`."""
    parser = subparsers.add_parser("judge", help="Score a run's answers on the five-dimension rubric with an LLM judge.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="Run folder with eval/predictions.jsonl.")
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1.")
    parser.add_argument("--model", required=True, help="Judge model name as the endpoint knows it.")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="Environment variable with the API key (default OPENAI_API_KEY).")
    parser.add_argument("--n", type=int, default=100, help="Cases to judge, sampled like `human-eval export` (0: all; default 100).")
    parser.add_argument("--seed", type=int, default=42, help="Sampling seed (default 42, as human-eval export).")
    parser.add_argument("--timeout", type=float, default=60.0, help="Per-request timeout in seconds.")
    parser.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once.")
    parser.set_defaults(handler=run_judge)


def run_judge(args: argparse.Namespace) -> int:
    """Run the judge and print mean scores and agreement with human raters."""
    from loraflow.tasks.evaluation.llm_judge import run_llm_judge

    summary = run_llm_judge(
        args.run_dir, args.base_url, args.model, api_key=os.environ.get(args.api_key_env) or None,
        max_cases=args.n or None, seed=args.seed, timeout_s=args.timeout, concurrency=args.concurrency,
    )
    print(f"judge {summary['model']} (rubric {summary['rubric_version']}): {summary['n_scored']} scored, {summary['n_failed']} unusable replies")
    for dim, stats in summary["dimensions"].items():
        agreement = summary["agreement"].get(dim)
        versus = f"  vs humans: MAE {agreement['mae']:.2f}, within 1: {agreement['within_1']:.0%} (n={agreement['n']})" if agreement else ""
        print(f"  {dim:<13} {stats['mean']:.2f} [{stats['ci_low']:.2f}, {stats['ci_high']:.2f}]{versus}")
    print(f"saved {args.run_dir}/eval/llm_judge.json" + (f"; logged to MLflow run {summary['mlflow_run_id']}" if summary["mlflow_run_id"] else ""))
    return 0
