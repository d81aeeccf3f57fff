"""What a person sees, in a real browser: the Prefect UI on a `loraflow deploy --pool process` database with one finished
tiny run, the MLflow UI on that run, and the run's reports.

Playwright drives the system Chromium (its own browser download needs the internet); the test is skipped where either
is missing (scripts/setup.sh installs Chromium where apt works). LORAFLOW_SCREENSHOT_DIR=docs/ also writes the
README's screenshots.
"""
import json
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.integration.ui_stack_support import chromium_path, start_ui_stack, stop_ui_stack

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright for the browser test")
CHROMIUM = chromium_path()
if CHROMIUM is None:
    pytest.skip("no system Chromium (apt-get install chromium) for the browser test", allow_module_level=True)

SHOTS = os.environ.get("LORAFLOW_SCREENSHOT_DIR")
WIDTH = 1440


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    held = os.environ.get("LORAFLOW_UI_STACK")  # a stack started once by `python -m tests.integration.ui_stack_support`
    if held:
        yield {**json.loads(Path(held).read_text()), "out": Path(json.loads(Path(held).read_text())["out"])}
        return
    stack = start_ui_stack(tmp_path_factory.mktemp("ui-stack"))
    yield stack
    stop_ui_stack(stack)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.set_default_timeout(60_000)
    yield page
    page.close()


def shot(page, name: str, **kwargs) -> None:
    """A README screenshot (small PNG) when LORAFLOW_SCREENSHOT_DIR is set."""
    if SHOTS:
        from PIL import Image

        path = Path(SHOTS) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), **kwargs)
        image = Image.open(path)  # small files for the README: 960 px wide, a 96-colour palette
        image = image.resize((960, round(image.height * 960 / image.width)), Image.LANCZOS)
        image.quantize(96).save(path, optimize=True)


def _deployment(stack: dict, name: str) -> dict:
    found = httpx.post(f"{stack['prefect']}/api/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}, timeout=30)
    [deployment] = found.json()
    return deployment


def test_the_data_run_form_has_a_few_described_inputs_whose_defaults_start_a_run(stack, page):
    deployment = _deployment(stack, "data")
    page.goto(f"{stack['prefect']}/deployments/deployment/{deployment['id']}/run")
    page.get_by_text("config_path").first.wait_for()
    text = page.inner_text("body")
    schema = deployment["parameter_openapi_schema"]["properties"]
    assert len(schema) <= 10 and "config" not in schema
    for name, field in schema.items():
        assert name in text and field["description"].split(" (")[0][:60] in text, name  # each input with its help text
    values = page.eval_on_selector_all("textarea, input", "fields => fields.map(f => f.value)")
    assert len(values) <= 12 and "examples/quickstart/pipeline.yaml" in values  # run name + a few fields, defaults filled in
    page.set_viewport_size({"width": WIDTH, "height": 1100})  # the whole form, down to Submit
    shot(page, "prefect-data-form")
    page.get_by_role("button", name="Submit").click()  # Run with no edits: Prefect validates the defaults and schedules it
    page.wait_for_url(re.compile(r"/deployments/deployment/[^/]+(\?.*)?$"))
    runs = httpx.post(f"{stack['prefect']}/api/flow_runs/filter", timeout=30,
                      json={"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}).json()
    assert [r["parameters"]["config_path"] for r in runs] == ["examples/quickstart/pipeline.yaml"]


def test_the_finetune_form_and_the_run_artifacts_have_links_that_click(stack, page):
    page.goto(f"{stack['prefect']}/deployments/deployment/{_deployment(stack, 'finetune')['id']}/run")
    page.get_by_text("max_steps").first.wait_for()
    page.set_viewport_size({"width": WIDTH, "height": 1200})
    shot(page, "prefect-finetune-form")
    page.set_viewport_size({"width": WIDTH, "height": 900})
    run = stack["run"]
    artifacts = httpx.post(f"{stack['prefect']}/api/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run["prefect_flow_run_id"]]}}}, timeout=30).json()
    by_key = {a["key"]: a for a in artifacts if a["key"]}
    run_page = f"{stack['mlflow']}/#/experiments/{run['mlflow_experiment_id']}/runs/{run['mlflow_run_id']}"
    for key in ("run-links", "mlflow-run", "evaluation-report"):
        page.goto(f"{stack['prefect']}/artifacts/artifact/{by_key[key]['id']}")
        page.locator("a[href^='http://127.0.0.1']").first.wait_for()
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        assert any(h.startswith(run_page) for h in hrefs), (key, hrefs)
        if key != "mlflow-run":
            assert f"file://{stack['out']}/eval/report.html" in hrefs, (key, hrefs)
        if key == "run-links":
            shot(page, "prefect-run-links")


def test_the_mlflow_run_page_has_a_description_and_a_logged_model(stack, page):
    run = stack["run"]
    run_page = f"{stack['mlflow']}/#/experiments/{run['mlflow_experiment_id']}/runs/{run['mlflow_run_id']}"
    page.goto(f"{run_page}?workflowType=machine_learning")
    page.get_by_text("promotion gate").first.wait_for()
    # MLflow 3.18 lists a run's logged models in a table under "Logged models (N)", each name a link to the model's
    # page; it fetches them after the run itself, so wait for the link rather than read the page at once.
    logged = page.locator(f"a[href*='/experiments/{run['mlflow_experiment_id']}/models/m-']", has_text="merged_model")
    logged.first.wait_for()
    _close_assistant(page)
    text = page.inner_text("body")
    assert "Description" in text and ("KEEP CHAMPION" in text or "PROMOTE" in text)
    assert re.search(r"^Logged models \(1\)$", text, re.M), text[:2000]
    version = run["outcome"]["registered_model"]
    assert page.locator(f"a[href$='/models/{version['name']}/versions/{version['version']}']").count() >= 1  # linked to the version
    more = page.get_by_text("Show more").first
    if more.count() and more.is_visible():
        more.click()  # the whole headline: the per-field table and the gate's decision
    shot(page, "mlflow-run-overview")
    page.get_by_text(re.compile(r"^Logged models \(\d+\)$")).first.scroll_into_view_if_needed()
    shot(page, "mlflow-run-logged-model")


def test_the_mlflow_run_charts_come_in_train_val_eval_sections(stack, page):
    run = stack["run"]
    run_page = f"{stack['mlflow']}/#/experiments/{run['mlflow_experiment_id']}/runs/{run['mlflow_run_id']}"
    page.goto(f"{run_page}/model-metrics?workflowType=machine_learning")
    page.get_by_text("Add chart").first.wait_for()
    _close_assistant(page)
    sections = dict(re.findall(r"^([\w/]+)\n\((\d+)\)$", page.inner_text("body"), re.M))
    # MLflow names a section by the whole prefix before the last '/': train, val, eval/candidate/field/category, ...
    assert {"train", "val", "eval", "data"} <= {name.split("/")[0] for name in sections}, sections
    if SHOTS:  # sections come alphabetically (data, deploy, estimate, eval/..., train, val): show the loss curves
        page.get_by_placeholder("Search metric charts").fill("/loss")
        for curve in ("train/loss", "val/loss"):  # a chart's legend names its metric once its data has loaded
            page.get_by_text(f"({curve})").first.wait_for()
        page.get_by_text("Step", exact=True).nth(1).wait_for()  # both charts drawn, axes included
        shot(page, "mlflow-run-charts")


def _close_assistant(page) -> None:
    """Fold MLflow 3.18's assistant side panel (it takes a third of the page in screenshots)."""
    close = page.locator("[aria-label='Close']").first
    if close.count() and close.is_visible():
        close.click()


def test_the_reports_and_the_human_eval_page(stack, page, tmp_path):
    from loraflow.tasks.evaluation.human_eval import export_human_eval

    page.goto((stack["out"] / "eval" / "report.html").as_uri())
    body = page.inner_text("body")
    assert body.index("Per answer field") < body.index("Promotion decision")  # the per-field table leads
    assert page.locator("section#decision details:not([open])").count() == 1  # the gate's checks collapsed
    shot(page, "eval-report")
    page.goto((stack["out"] / "data" / "report.html").as_uri())
    assert page.locator("nav a").count() >= 6 and "every input record accounted for" in page.inner_text("body")
    shot(page, "data-report")
    quarantined = page.locator("details.records").first  # "Records taken out, in full": the quarantine comes first
    quarantined.locator("summary").first.click()
    lines = quarantined.locator(":scope > details > summary").all_inner_texts()
    assert len(lines) == len((stack["out"] / "data" / "quarantine.jsonl").read_text().splitlines()), lines
    assert all(re.match(r"line \d+ · \w+ · \w+.*: \S", line) for line in lines), lines  # each with its value or error
    page.locator("section#records").evaluate("section => section.scrollIntoView()")
    shot(page, "data-report-quarantine")

    exported = export_human_eval(str(stack["out"]), 6, str(tmp_path / "human"))
    page.goto(Path(exported["html"]).as_uri())
    header = page.locator("header").bounding_box()
    assert header["height"] < 70  # one line at 1440 px
    page.keyboard.press("Numpad4")  # the number pad scores like the number row
    assert page.locator("input[type=radio][value='4']:checked").count() == 1
