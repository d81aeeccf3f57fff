"""A hyper-parameter sweep: every combination of a grid of overrides as its own finetune run, the best by val loss."""
from prefect import flow

from loraflow.flows import DEFAULT_CONFIG
from loraflow.schemas.config import PipelineConfig
from loraflow.flows.finetune import finetune
from loraflow.tasks.steps import planning, training
from loraflow.tasks.steps.tracking import end_mlflow_run


@flow(name="sweep", on_failure=[end_mlflow_run], on_crashed=[end_mlflow_run], on_cancellation=[end_mlflow_run])
def sweep(config: PipelineConfig, grid: dict[str, list[str]], input_path: str | None = None,
          out_dir: str = "runs/sweep", concurrency: int = 1) -> dict:
    """Run the trials `concurrency` at a time (each a finetune child flow and MLflow child run); return the best."""
    parent = training.start_sweep(config=config, grid=grid, out_dir=out_dir)
    trials = []
    for start in range(0, len(parent.trials), max(1, concurrency)):  # waves of `concurrency` finetune child flows
        wave = [training.sweep_trial.submit(finetune=finetune, config=config, trial=trial, input_path=input_path,
                                            parent=parent, index=start + i)
                for i, trial in enumerate(parent.trials[start:start + max(1, concurrency)])]
        trials += [future.result() for future in wave]
    return training.finish_sweep(parent=parent, trials=trials, grid=grid, out_dir=out_dir).to_dict()


@flow(name="sweep", on_failure=[end_mlflow_run], on_crashed=[end_mlflow_run], on_cancellation=[end_mlflow_run])
def sweep_from_file(config_path: str = DEFAULT_CONFIG, grid: list[str] = ["train.learning_rate=1e-4,2e-4"],  # noqa: B006
                    input_path: str = "", out_dir: str = "runs/sweep", max_steps: int = 0, concurrency: int = 1,
                    overrides: list[str] = []) -> dict:  # noqa: B006 (never mutated)
    """The sweep deployment's Run form: a config file, the grid as lines, the settings people change most.

    Args:
        config_path: Pipeline YAML, relative to the repository root; the bundled quickstart example by default.
        grid: One line per setting to vary, dotted.key=value1,value2 (e.g. lora.r=8,16); every combination is one trial.
        input_path: Input data file (.jsonl/.json/.csv/.parquet); empty: the config's data.path.
        out_dir: Sweep folder, relative to the repository root; one trial folder inside per run, and sweep.json.
        max_steps: A cap (train.max_steps) on every trial's optimizer steps for a quick sweep; 0: the config's (epochs decide).
        concurrency: Trials run at the same time (1: one after another, as on one CPU or one GPU).
        overrides: Any other setting for every trial as dotted.key=value, e.g. train.epochs=2 (`loraflow config schema` lists every key).
    """
    from loraflow.tasks.training.sweep import parse_grid

    config = planning.load_pipeline_config(config_path, [*([f"train.max_steps={max_steps}"] if max_steps else []), *overrides])
    return sweep.fn(config=config, grid=parse_grid(grid), input_path=input_path or None, out_dir=out_dir,
                    concurrency=max(1, concurrency))
