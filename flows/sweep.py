"""A hyper-parameter sweep: every combination of a grid of overrides as its own finetune run, the best by val loss."""
from prefect import flow

from loraflow.schemas.config import PipelineConfig
from loraflow.flows.finetune import finetune
from loraflow.tasks.steps import training
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
