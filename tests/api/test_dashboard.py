"""The web dashboard in a real headless Chromium against a running service with a finished job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.conftest import FAST_HYPERPARAMETERS, submit_in_database, wait_for_terminal
from tuneq.processes import Service

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make test` installs it); Playwright downloads no browser here
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "needs Debian's chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        # A persistent context so the profile directory is a fresh one of this test's own.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield context.new_page()
        context.close()


@pytest.mark.slow
def test_dashboard_plots_loss_shows_cost_vs_estimate_downloads_and_pauses_resumes_cancels_a_queued_job(
    settings: Settings,
    api_url: str,
    client: httpx.Client,
    api_key: str,
    worker: Service,
    tiny_model: Path,
    sample_dataset: Path,
    uploaded_file: dict[str, Any],
    page: Any,
    tmp_path: Path,
) -> None:
    body = {
        "base_model": str(tiny_model),
        "training_file": uploaded_file["id"],
        "hyperparameters": FAST_HYPERPARAMETERS,
    }
    finished = wait_for_terminal(client, client.post("/finetune", json=body).json()["id"], worker)
    assert finished["status"] == "succeeded", finished["error"]
    worker.stop()  # so the next job stays queued for the cancel button
    queued_id = submit_in_database(settings, "acme", tiny_model, sample_dataset)

    page.goto(f"{api_url}/dashboard")
    page.fill("#key", api_key)
    page.click("#login button[type=submit]")
    page.wait_for_selector(f"#jobs-table tr[data-job-id='{queued_id}']")
    assert page.locator("#jobs-table tbody tr").count() == 2
    page.select_option("#status-filter", "succeeded")
    page.wait_for_function("document.querySelectorAll('#jobs-table tbody tr').length === 1")
    assert page.locator("#jobs-table tbody tr").get_attribute("data-job-id") == finished["id"]

    page.click(f"a[href='#/jobs/{finished['id']}']")
    page.wait_for_selector(f"#job[data-job-id='{finished['id']}'][data-status='succeeded']")
    plotted = json.loads(page.get_attribute("#chart-loss", "data-points"))
    metrics = client.get(f"/finetune/{finished['id']}/metrics").json()["data"]
    assert plotted["train"] == [[m["step"], m["loss"]] for m in metrics if m["loss"] is not None]
    assert len(plotted["train"]) == finished["progress"]["total_steps"]
    assert page.locator("#chart-loss polyline.train").count() == 1
    assert page.locator("#samples tbody tr").count() == len(finished["result"]["samples"]) > 0
    assert page.locator("#events li").count() == len(client.get(f"/finetune/{finished['id']}/events").json()["data"])
    assert page.is_disabled("#cancel") and page.is_disabled("#pause") and page.is_disabled("#resume")
    estimate = finished["estimate"]
    assert f"(estimate {estimate['total_steps']})" in page.inner_text("#job-estimate")
    assert f"(estimate ${estimate['cost_usd']:.6f})" in page.inner_text("#job-estimate")
    env = finished["environment"]
    ran_on = f"{env['device_name']} ({env['device']}) · {env['dtype']} · {env['quantization'] or 'no quantization'}"
    assert page.inner_text("#job-hardware") == f"1 GPU · {ran_on}"
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "adapter.tar"
    download.value.save_as(saved)
    assert saved.read_bytes() == client.get(f"/finetune/{finished['id']}/adapter").content
    screenshot = tmp_path / "dashboard-job.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")

    page.goto(f"{api_url}/dashboard/#/jobs/{queued_id}")
    page.wait_for_selector(f"#job[data-job-id='{queued_id}'][data-status='queued']")
    assert page.is_disabled("#resume") and page.is_disabled("#download")
    assert page.inner_text("#job-hardware") == "1 GPU · not started"
    page.click("#pause")
    page.wait_for_selector(f"#job[data-job-id='{queued_id}'][data-status='paused']")
    assert client.get(f"/finetune/{queued_id}").json()["status"] == "paused"
    page.click("#resume")
    page.wait_for_selector(f"#job[data-job-id='{queued_id}'][data-status='queued']")
    assert client.get(f"/finetune/{queued_id}").json()["status"] == "queued"
    # A change made elsewhere reaches the open page through its event stream, without a reload.
    assert client.post(f"/finetune/{queued_id}/pause").json()["status"] == "paused"
    page.wait_for_selector(f"#job[data-job-id='{queued_id}'][data-status='paused']")
    page.click("#cancel")
    page.wait_for_selector(f"#job[data-job-id='{queued_id}'][data-status='cancelled']")
    assert client.get(f"/finetune/{queued_id}").json()["status"] == "cancelled"


def test_dashboard_files_are_served_without_a_key_and_nothing_else_is(api_url: str) -> None:
    assert httpx.get(f"{api_url}/dashboard/").headers["content-type"].startswith("text/html")
    assert httpx.get(f"{api_url}/dashboard/app.js").status_code == 200
    assert httpx.get(f"{api_url}/dashboard/..%2Fmain.py").status_code == 404
    assert httpx.get(f"{api_url}/finetune").status_code == 401  # the data still needs a key
