"""The manager's status page in a real browser: headless Chromium (Debian's chromium and
chromium-driver, installed by `make browser-deps`) against a real `cofre local up`, changed
with the real CLI while the page stays open. Every check reads what the page shows.

The screenshots are written to the test's temp dir; `make screenshots` sets COFRE_SCREENSHOTS
to docs/ so the same steps refresh docs/status-page*.png.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from cofre.storage_node.store import stored_chunks

from ..helpers import eventually_sync

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS_ENV = "COFRE_SCREENSHOTS"
WIDTH = 1360
# Seconds the page may take to show a change: it polls every 3 s, the manager probes every 1 s
# (a dead node turns unready after two failed probes).
PAGE_TIMEOUT_S = 45.0
SCORE = re.compile(r"^\d\.\d{3}$")
SCRUB_CYCLE_S = 4
# Chromium flags: headless as root in a container, and none of its own traffic (updates, sync,
# safe browsing), so what the page loads is all there is.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
    f"--window-size={WIDTH},1000",
    # The local cluster's certificate is from its own CA, which this browser profile does not
    # know; the CLI tests check that trust, these check the page.
    "--ignore-certificate-errors",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install Debian's chromium and chromium-driver "
            "(make browser-deps)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    # The page's console, read at the end of a test: a script error fails it.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    # Both paths given: selenium uses them and fetches no driver or browser of its own.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def local(it: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A cluster of its own: a test here kills one of its nodes. Its nodes scrub every few
    seconds (a pass runs every 10 s), so the page shows whole cycles and what they found."""
    c = it.start_cluster(
        tmp_path_factory.mktemp("status-page") / "local",
        nodes=4,
        extra_args=["--node-scrub-cycle-s", str(SCRUB_CYCLE_S)],
    )
    try:
        yield c
    finally:
        code = c.stop()
    assert code == 0, c.stderr_text()


# --- reading the page -----------------------------------------------------------------------------


def text(driver: WebDriver, element_id: str) -> str:
    """The visible text of an element ("" while it is hidden)."""
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found and found[0].is_displayed() else ""


def node_rows(driver: WebDriver) -> dict[str, list[str]]:
    """node id -> the visible text of each cell of its row in the nodes table."""
    rows: list[list[str]] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#nodes tbody tr'))"
        ".map(tr => [tr.dataset.node, ...Array.from(tr.cells).map(td => td.innerText.trim())])"
    )
    return {row[0]: row[1:] for row in rows} if text(driver, "nodes") else {}


def scrub_rows(driver: WebDriver) -> dict[str, list[str]]:
    """node id -> the visible text of each cell of its row in the scrub table."""
    rows: list[list[str]] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#scrub tbody tr'))"
        ".map(tr => [tr.dataset.node, ...Array.from(tr.cells).map(td => td.innerText.trim())])"
    )
    return {row[0]: row[1:] for row in rows} if text(driver, "scrub") else {}


def backup_rows(driver: WebDriver) -> list[list[str]]:
    rows: list[list[str]] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#backups tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))"
    )
    return rows if text(driver, "backups") else []


def until_page(driver: WebDriver, check: Any, *, what: str) -> Any:
    return eventually_sync(lambda: check(driver), what=what, timeout_s=PAGE_TIMEOUT_S, poll_s=0.2)


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page loaded or fetched (the Performance API's entries)."""
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('navigation')"
        ".concat(performance.getEntriesByType('resource')).map(e => e.name)"
    )
    return urls


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """A PNG of the whole page; also into $COFRE_SCREENSHOTS (make screenshots: docs/)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": WIDTH, "height": max(700, int(height)), "deviceScaleFactor": 1}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
    path = tmp_path / name
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert path.read_bytes().startswith(b"\x89PNG")
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        shutil.copyfile(path, Path(target) / name)
    return path


def script_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Errors the page's console logged since the last call. A refused token's 401 is logged by
    the browser as a failed load: that one is expected."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [e for e in entries if e["level"] == "SEVERE" and "401" not in e["message"]]


def log_in(driver: WebDriver, url: str, token: str) -> None:
    driver.get(url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/")
    until_page(driver, lambda d: text(d, "login-form"), what="the login form")
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.ID, "login-button").click()


# --- the tests ------------------------------------------------------------------------------------


def test_a_wrong_token_shows_the_error_and_the_form_again(
    browser: WebDriver, local: Any, tmp_path: Path
) -> None:
    log_in(browser, local.url, "not-the-token")
    error = until_page(browser, lambda d: text(d, "login-error"), what="the login error")
    assert "refused this token" in error and "401" in error
    assert text(browser, "login-form"), "the form is shown again"
    assert not text(browser, "dashboard")
    assert browser.execute_script("return sessionStorage.length") == 0
    screenshot(browser, tmp_path, "status-page-login.png")


def test_the_page_follows_the_cluster_live(
    browser: WebDriver, local: Any, it: Any, tmp_path: Path
) -> None:
    log_in(browser, local.url, local.token)
    node_ids = {n["node_id"] for n in local.state()["nodes"]}
    assert len(node_ids) == 4

    def every_node_ready_and_scored(driver: WebDriver) -> dict[str, list[str]]:
        rows = node_rows(driver)
        if set(rows) != node_ids:
            return {}
        ok = all(
            "ready" in r[1] and "not ready" not in r[1] and SCORE.match(r[-1])
            for r in rows.values()
        )
        return rows if ok else {}

    rows = until_page(browser, every_node_ready_and_scored, what="every node ready with a score")
    # The best three are marked (replication factor 2, the primary relays and keeps no copy).
    assert sum("top 3" in r[1] for r in rows.values()) == 3
    formula = text(browser, "formula")
    assert "50/50" in formula and "latency" in formula and "bytes stored" in formula
    assert "best 3" in formula
    assert text(browser, "t-nodes") == "4 / 4"
    assert "No backups yet." in text(browser, "dashboard")
    assert "No node is draining." in text(browser, "drain")
    # Flat before anything is stored (two samples at least, so the rate is known).
    until_page(browser, lambda d: text(d, "t-forecast") == "not growing", what="not growing")

    # A mark the page would lose if it reloaded.
    browser.execute_script("window.cofreTestMark = 'still here'")
    first = it.random_file(tmp_path / "first", 3 * 1024 * 1024 + 17)
    second = it.random_file(tmp_path / "second", 700 * 1024)
    for path, name in ((first, "projects/report.pdf"), (second, "photos/2026/beach.jpg")):
        put = local.cli("put", str(path), "--name", name)
        assert put.code == 0, put.err
    put = local.cli("put", str(first), "--name", "projects/report.pdf")
    assert put.code == 0, put.err

    backups = until_page(
        browser, lambda d: len(backup_rows(d)) == 3 and backup_rows(d), what="three backups"
    )
    # Newest first: the second version of the report, then the photo, then its first version.
    assert [(r[0], r[1]) for r in backups] == [
        ("projects/report.pdf", "2"),
        ("photos/2026/beach.jpg", "1"),
        ("projects/report.pdf", "1"),
    ]
    assert backups[0][2] == "3.00 MiB"
    assert browser.execute_script("return window.cofreTestMark") == "still here"
    assert len(browser.execute_script("return performance.getEntriesByType('navigation')")) == 1
    assert text(browser, "t-files") == "2"
    forecast = until_page(
        browser,
        lambda d: text(d, "t-forecast").startswith("full in ") and text(d, "t-forecast"),
        what="a forecast once the cluster grows",
    )
    assert re.match(r"^full in \d+(\.\d)? (s|min|h|d|y)$", forecast), forecast

    # fsck and repair by hand: the page shows their results.
    assert local.cli("fsck").code == 0
    health = until_page(
        browser, lambda d: "Latest fsck" in text(d, "health") and text(d, "health"), what="fsck"
    )
    assert "under-replicated" in health and "missing" in health
    ok_count = browser.find_element(By.CSS_SELECTOR, "#health .state.ok b").text
    assert int(ok_count) > 0
    assert text(browser, "t-health") == "healthy"
    assert local.cli("repair").code == 0
    repair = until_page(
        browser, lambda d: "Copies made" in text(d, "repair") and text(d, "repair"), what="repair"
    )
    assert "healthy" in repair

    # Everything the page asked for came from the manager on loopback.
    urls = requested_urls(browser)
    assert any(u.endswith("/v1/overview") for u in urls), urls
    assert all(u.startswith(local.url + "/") for u in urls), urls
    assert local.url.startswith("https://127.0.0.1:")
    screenshot(browser, tmp_path, "status-page.png")
    assert not script_errors(browser)


def test_a_killed_node_turns_not_ready_then_ready_again(
    browser: WebDriver, local: Any, it: Any
) -> None:
    """A storage node killed while the page is open (`cofre local kill --down-for`): the page
    shows it not ready (no score), the others ready, without a reload; once `local up` has
    restarted it, the page shows it ready again."""
    log_in(browser, local.url, local.token)
    until_page(browser, lambda d: text(d, "t-nodes") == "4 / 4", what="every node ready")
    victim = sorted(n["node_id"] for n in local.state()["nodes"])[0]
    pid = local.state()["pids"][victim]
    browser.execute_script("window.cofreTestMark = 'still here'")
    # Down for longer than the page may take to show it (PAGE_TIMEOUT_S): what the page shows
    # next is the node down, not already back.
    down_for = PAGE_TIMEOUT_S + 5
    env = dict(it.base_env(), COFRE_DATA_DIR=str(local.data_dir))
    kill = it.run_cli(["local", "kill", victim, "--down-for", f"{down_for:g}"], env=env)
    assert kill.code == 0, kill.err
    rows = until_page(
        browser,
        lambda d: "not ready" in node_rows(d).get(victim, ["", ""])[1] and node_rows(d),
        what=f"{victim} not ready",
    )
    others = [r for n, r in rows.items() if n != victim]
    assert len(others) == 3 and all("not ready" not in r[1] for r in others)
    assert rows[victim][-1] == "—", "an unready node is no candidate: no score"
    assert text(browser, "t-nodes") == "3 / 4"
    assert local.proc.poll() is None, local.stderr_text()
    assert f"{victim} (pid {pid}) exited with signal SIGKILL" in local.stderr_text()

    rows = eventually_sync(
        lambda: text(browser, "t-nodes") == "4 / 4" and node_rows(browser),
        what=f"{victim} ready again",
        timeout_s=down_for + PAGE_TIMEOUT_S,
        poll_s=0.5,
    )
    assert "not ready" not in rows[victim][1] and SCORE.match(rows[victim][-1]), rows
    new_pid = local.state()["pids"][victim]
    assert new_pid not in (0, pid) and it.process_running(new_pid)
    assert f"{victim} restarted (pid {new_pid}" in local.stderr_text()
    assert browser.execute_script("return window.cofreTestMark") == "still here"
    assert not script_errors(browser)


def test_the_page_shows_each_nodes_scrub_and_the_rot_it_finds(
    browser: WebDriver, local: Any, it: Any, tmp_path: Path
) -> None:
    """Every node's scrub cycle on the page: how far it is, when it last read everything, and
    a flipped byte in one stored copy showing up as that node's finding, nobody asking."""
    log_in(browser, local.url, local.token)
    put = local.cli("put", str(it.random_file(tmp_path / "rot", 300 * 1024)), "--name", "rot")
    assert put.code == 0, put.err
    node_ids = {n["node_id"] for n in local.state()["nodes"]}

    def every_node_scrubbed(driver: WebDriver) -> dict[str, list[str]]:
        rows = scrub_rows(driver)
        done = set(rows) == node_ids and all(r[4] != "not yet" for r in rows.values())
        return rows if done else {}

    rows = until_page(browser, every_node_scrubbed, what="a full scrub pass on every node")
    for row in rows.values():
        # Node, this cycle, what it read, when it began, the last full pass, cycle, found.
        assert re.fullmatch(r"\d{1,3}%", row[1]), row
        assert re.fullmatch(r"\d+ chunks, \d+(\.\d+)? (B|KiB|MiB)", row[2]), row
        assert row[3] != "not yet" and (row[4] == "just now" or row[4].endswith(" ago")), row
        assert row[5] == f"{SCRUB_CYCLE_S} s", row
    found_before = {n: int(r[6]) for n, r in rows.items()}

    # One byte flipped in one copy the cluster holds, on disk, behind the node's back.
    stored = sorted(
        (node_id, chunk_hash, where.length)
        for node_id in local.node_dirs()
        for chunk_hash, where in stored_chunks(local.data_dir / "nodes" / node_id).items()
        if where.length > 0
    )
    node, victim, length = stored[len(stored) // 2]
    local.flip_byte(node, victim, at=length // 2)

    def found(driver: WebDriver) -> dict[str, list[str]]:
        rows = scrub_rows(driver)
        return rows if node in rows and int(rows[node][6]) > found_before[node] else {}

    rows = until_page(browser, found, what=f"the scrub's finding on {node}")
    assert int(rows[node][6]) == found_before[node] + 1
    assert {n: int(r[6]) for n, r in rows.items() if n != node} == {
        n: c for n, c in found_before.items() if n != node
    }
    finding = browser.find_element(By.CSS_SELECTOR, f'#scrub tr[data-node="{node}"] .found .bad')
    assert finding.text == rows[node][6]
    # ... and the manager put a good copy back, unasked.
    eventually_sync(
        lambda: local.cli("fsck", "--verify").code == 0,
        what="fsck --verify clean after the repair",
        timeout_s=PAGE_TIMEOUT_S,
        poll_s=1.0,
    )
    assert not script_errors(browser)


def test_the_page_is_public_and_holds_no_data(local: Any, it: Any) -> None:
    """Without the token: the page and its files load; the data does not."""
    import urllib.error
    import urllib.request

    tls = local.ssl_context()
    with urllib.request.urlopen(local.url + "/", context=tls) as resp:
        page = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "connect-src 'self'" in resp.headers["Content-Security-Policy"]
    assert 'src="/ui/status.js"' in page and local.token not in page
    for path in ("/ui/status.js", "/ui/status.css"):
        with urllib.request.urlopen(local.url + path, context=tls) as resp:
            assert resp.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(local.url + "/v1/overview", context=tls)
    assert refused.value.code == 401
