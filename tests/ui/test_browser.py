"""The Dagster UI, driven by headless Chromium, on a real (tiny) pipeline run.

A data home is filled by ``offline-rl demo`` (two simulated days, a hundred training
steps), ``dagster-webserver`` serves ``workspace.yaml`` against that instance on a free port,
and Chromium (through Playwright, with the system's ``/usr/bin/chromium``; no browser is
downloaded) checks that the asset graph shows every stage of the pipeline, that an asset's
page renders the metadata of its latest materialization, and that the runs page lists the
demo's runs. Screenshots land in ``test-artifacts/ui/``.

Run with ``make test-ui`` (installs Chromium and Playwright first). Without Chromium or
Playwright the tests are skipped, except under CI (``CI`` set), where they fail.
``UPDATE_DOC_IMAGES=1`` also copies the asset-graph and asset-plots screenshots to
``docs/img/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ui]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DOC_IMAGE = ROOT / "docs" / "img" / "asset-graph.png"
PLOTS_DOC_IMAGE = ROOT / "docs" / "img" / "asset-plots.png"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1920, "height": 1200}
DEMO_ARGS = [
    "--days", "2", "--events-per-day", "2000", "--n-steps", "100", "--fqe-steps", "100",
    "--n-bootstrap", "50", "--truth-episodes", "200", "--domains", "recommendation",
]
# One asset per stage; asset names stay stable if groups are reorganised.
STAGE_ASSETS = [
    "raw_clickstream",
    "recommendation_transitions",
    "recommendation_candidates",
    "recommendation_ope",
    "recommendation_gate",
    "recommendation_export",
]
INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
SERVER_START_TIMEOUT_S = 150
UI_TIMEOUT_MS = 60_000
UPDATE_DOC_IMAGES = os.environ.get("UPDATE_DOC_IMAGES") == "1"


def require_browser() -> None:
    """Skips (or, under CI, fails) with one line saying what is missing."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -c constraints.txt -e '.[ui]')")
    if missing:
        message = f"browser test needs {' and '.join(missing)}; run: make ui-deps"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():  # the folder holds test output only
        ignore.write_text("*\n")
    return ARTIFACTS


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a data home and Dagster instance holding one tiny demo run."""
    require_browser()
    base = tmp_path_factory.mktemp("ui")
    home, dagster_home = base / "home", base / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**os.environ, "OFFLINE_RL_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "OMP_NUM_THREADS": "1"}
    log = artifacts_dir() / "demo.log"
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", *DEMO_ARGS],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=600)
    assert proc.returncode == 0, f"offline-rl demo failed:\n{tail(log)}"
    return env


def graphql(base_url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_until_loaded(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Returns once the webserver answers and every code location has loaded."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    state = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{tail(log)}")
        try:
            entries = graphql(base_url, LOCATIONS_QUERY)["data"]["workspaceOrError"][
                "locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError) as exc:
            state = f"no answer ({exc})"
        else:
            state = f"locations {entries}"
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, f"code location failed to load: {errors}"
                return
        time.sleep(1.0)
    pytest.fail(f"dagster-webserver not ready after {SERVER_START_TIMEOUT_S} s ({state}):\n"
                f"{tail(log)}")


@pytest.fixture(scope="module")
def server(ui_env: dict[str, str]) -> Iterator[str]:
    """Base URL of ``dagster-webserver`` serving workspace.yaml against the demo's instance."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = artifacts_dir() / "webserver.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=ui_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: the code server goes with it
    try:
        wait_until_loaded(base_url, proc, log)
        yield base_url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser_context(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            headless=True, args=CHROMIUM_FLAGS, viewport=VIEWPORT,
            device_scale_factor=2 if UPDATE_DOC_IMAGES else 1)  # a sharper picture for docs
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = browser_context.new_page()
    # Dagster's first-visit dialog is off in the instance config; dismiss it should it appear.
    dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    page.add_locator_handler(dialog, lambda: dialog.get_by_role("button", name="Skip").click())
    try:
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:  # the page as the test left it
            page.screenshot(path=str(artifacts_dir() / f"failed-{request.node.name}.png"))
    finally:
        page.close()


def latest_metadata(env: dict[str, str], asset: str) -> dict[str, Any]:
    """Metadata values of ``asset``'s latest materialization, read from the instance."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None, \
        f"{asset} was never materialised"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def shown_as(value: Any) -> re.Pattern[str]:
    """How the UI may print a metadata value (an integer with or without thousands commas)."""
    forms = {str(value)} | ({f"{value:,}"} if isinstance(value, int) else set())
    return re.compile(r"^\s*(" + "|".join(map(re.escape, sorted(forms))) + r")\s*$")


def graph_node(page: Any, name: str) -> Any:
    """The name label of an asset (or group) node in the graph."""
    return page.locator(f'[data-tooltip="{name}"]')


def expanded_groups_clip(page: Any, margin: float = 24) -> dict[str, float]:
    """A screenshot clip around every expanded group of the graph."""
    groups = page.locator('[class*="ExpandedGroupNode"]')
    boxes = [b for b in (groups.nth(i).bounding_box() for i in range(groups.count())) if b]
    assert boxes, "no expanded group on screen"
    x0 = max(0.0, min(b["x"] for b in boxes) - margin)
    y0 = max(0.0, min(b["y"] for b in boxes) - margin)
    x1 = min(VIEWPORT["width"], max(b["x"] + b["width"] for b in boxes) + margin)
    y1 = min(VIEWPORT["height"], max(b["y"] + b["height"] for b in boxes) + margin)
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def open_asset_graph(page: Any, server: str, selection: str | None = None,
                     expand: bool = True) -> None:
    """The global asset lineage, navigation hidden, optionally filtered and groups expanded."""
    from playwright.sync_api import expect

    page.goto(f"{server}/asset-groups")
    expect(graph_node(page, "ingestion").last).to_be_visible()
    # more room for the graph; the UI remembers both choices, so a later visit may not need it
    hide_navigation = page.get_by_text("Hide navigation", exact=True)
    if hide_navigation.is_visible():
        hide_navigation.click()
    if page.get_by_placeholder("Jump to…").is_visible():  # the asset tree beside the graph
        page.locator('button:has([aria-label="panel_show_right"])').click()
    if selection:
        page.locator(".CodeMirror").first.click()  # the "Search and filter assets" box
        page.keyboard.type(selection)
        page.keyboard.press("Enter")
        page.mouse.click(VIEWPORT["width"] // 2, VIEWPORT["height"] - 60)  # close suggestions
    if not expand:
        return
    page.locator('button:has([aria-label="settings"])').last.click()  # the graph's settings
    expand_all = page.get_by_role("menuitem", name=re.compile("Expand all groups"))
    collapse_all = page.get_by_role("menuitem", name=re.compile("Collapse all groups"))
    expect(expand_all.or_(collapse_all)).to_be_visible()
    if expand_all.is_visible():
        expand_all.click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_have_count(0)


def test_asset_graph_shows_the_pipeline_groups(page: Any, server: str) -> None:
    """The whole graph, one collapsed node per group: ingestion feeds each domain's group."""
    from playwright.sync_api import expect

    open_asset_graph(page, server, expand=False)
    for group in ("ingestion", "recommendation"):
        expect(graph_node(page, group).last).to_be_visible()
    expect(page.get_by_text("fetching statuses")).to_have_count(0)  # the groups' live data
    page.screenshot(path=str(artifacts_dir() / "asset-graph.png"))


PARTITION_STATS_QUERY = """
{ assetNodes { assetKey { path } groupName
    partitionStats { numMaterialized numPartitions numFailed numMaterializing } } }
"""


def test_export_lineage_shows_every_stage(page: Any, server: str) -> None:
    """Filtered to the export and its ancestors, the graph holds one chain, raw table first;
    every partition of every stage is filled (the days of logs are the demo's days, the
    nights its one night), so no node shows a missing partition."""
    from playwright.sync_api import expect

    open_asset_graph(page, server, selection="+key:recommendation_export")
    for asset in STAGE_ASSETS:
        expect(graph_node(page, asset)).to_be_visible()
    expect(graph_node(page, "raw_cart")).to_have_count(0)  # not an ancestor of the export
    filled = page.get_by_text(re.compile(r"^\d+% filled$"))
    expect(filled.first).to_be_visible()
    assert filled.count() >= len(STAGE_ASSETS) + 1  # and the monitor
    expect(page.get_by_text("100% filled", exact=True)).to_have_count(filled.count())
    page.wait_for_timeout(500)
    shot = artifacts_dir() / "asset-lineage-recommendation.png"
    page.screenshot(path=str(shot), clip=expanded_groups_clip(page))
    if UPDATE_DOC_IMAGES:
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_IMAGE)


def test_no_partition_of_the_demos_assets_is_missing(server: str) -> None:
    """What the graph's "filled" figures are made of, for every asset the demo runs (the
    ingestion group and its domain): each has partitions, all materialized, none failed."""
    nodes = graphql(server, PARTITION_STATS_QUERY)["data"]["assetNodes"]
    demo = {"/".join(n["assetKey"]["path"]): n["partitionStats"] for n in nodes
            if n["groupName"] in ("ingestion", "recommendation")}
    assert set(STAGE_ASSETS) | {"recommendation_monitor"} <= set(demo)
    unfilled = {key: stats for key, stats in demo.items()
                if not stats["numPartitions"] or stats["numFailed"]
                or stats["numMaterialized"] != stats["numPartitions"]}
    assert not unfilled, unfilled
    assert demo["raw_clickstream"]["numPartitions"] == 2  # the demo's two days
    assert demo["recommendation_gate"]["numPartitions"] == 1  # and its one night


def test_asset_page_renders_materialization_metadata(page: Any, server: str,
                                                     ui_env: dict[str, str]) -> None:
    from playwright.sync_api import expect

    asset = "recommendation_transitions"
    metadata = latest_metadata(ui_env, asset)
    transitions = int(metadata["transitions"])
    assert transitions > 0
    page.goto(f"{server}/assets/{asset}")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    for key, value in (("transitions", transitions), ("partition", metadata["partition"])):
        row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
        expect(row).to_have_count(1)
        expect(row.locator("td").last).to_have_text(shown_as(value))
    page.screenshot(path=str(artifacts_dir() / "asset-metadata.png"), full_page=True)


def test_asset_page_shows_the_materializations_plots(page: Any, server: str) -> None:
    """The transitions' ``plots`` metadata (markdown with inline PNGs) opens from the asset's
    page and both images are decoded and drawn."""
    from playwright.sync_api import expect

    page.goto(f"{server}/assets/recommendation_transitions")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    row = page.locator("tr").filter(has=page.get_by_text("plots", exact=True))
    expect(row).to_have_count(1)
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    for alt in ("logged action shares", "reward distribution"):
        image = dialog.locator(f'img[alt="{alt}"]')
        expect(image).to_be_visible()
        image.scroll_into_view_if_needed()
        assert image.evaluate("img => img.complete && img.naturalWidth > 100"), alt
    shot = artifacts_dir() / "asset-plots.png"
    dialog.screenshot(path=str(shot))
    if UPDATE_DOC_IMAGES:
        PLOTS_DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, PLOTS_DOC_IMAGE)


def test_runs_page_lists_the_demo_runs(page: Any, server: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server}/runs")
    for job in ("nightly", "ingest", "transitions"):  # the demo runs nightly's data as these
        expect(page.get_by_role("link", name=job, exact=True).first).to_be_visible()
    expect(page.get_by_text("Success").first).to_be_visible()
    expect(page.get_by_text("Failure")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir() / "runs.png"))
