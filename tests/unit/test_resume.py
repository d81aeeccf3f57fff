"""last_good_checkpoint: newest complete checkpoint with finite logged losses."""
import json

from loraflow.tasks.training.resume import last_good_checkpoint


def _checkpoint(root, step, *, state=True, weights=True, losses=(1.0,)):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    if state:
        history = [{"loss": loss, "step": i + 1} for i, loss in enumerate(losses)]
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": history}))
    return str(folder)


def test_picks_the_highest_step_numerically(tmp_path):
    _checkpoint(tmp_path, 9)
    ten = _checkpoint(tmp_path, 10)
    assert last_good_checkpoint(tmp_path) == ten


def test_skips_half_written_and_non_finite_checkpoints(tmp_path):
    good = _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6, state=False)  # killed while saving: trainer_state.json is written last
    _checkpoint(tmp_path, 8, weights=False)
    _checkpoint(tmp_path, 10, losses=(1.0, float("nan")))
    assert last_good_checkpoint(tmp_path) == good


def test_nothing_to_resume(tmp_path):
    assert last_good_checkpoint(tmp_path / "missing") is None
    (tmp_path / "runs").mkdir()
    assert last_good_checkpoint(tmp_path) is None
