"""`evo report`: one self-contained HTML file, checked as text and in a real headless
Chromium (Debian's chromium and chromium-driver, driven by selenium; .ci/run installs
them). Without a browser the browser tests skip, loudly."""
from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evo.cli import main as evo_main
from evo.commands.report import embed_json
from tests.test_inspect import evo, evo_json, small_run

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
HOSTILE = "</script><script>window.__pwned = 1</script> <!-- & \u2028 \"quotes\" </SCRIPT >"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory)


@pytest.fixture(scope="module")
def hostile_report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The report of a copy of the run whose best thought tries to break out of the page."""
    copy = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(run_dir, copy)
    db = sqlite3.connect(copy / "run.sqlite")
    with db:
        best = db.execute("SELECT id FROM candidates WHERE status = 'ok' ORDER BY score, id LIMIT 1").fetchone()[0]
        db.execute("UPDATE candidates SET thought = ? WHERE id = ?", (HOSTILE, best))
    db.close()
    page = copy / "report.html"
    assert evo_main(["report", str(copy), "-o", str(page)]) == 0
    return page, {"best": best, "run": copy}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs).get("type", "text/javascript")

    def handle_data(self, data):
        if self._script is not None:
            self.data[self._script] = self.data.get(self._script, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def test_embedded_json_cannot_end_its_script_element():
    payload = {"thought": HOSTILE, "code": "if a < b and b > c: print('&amp;')", "n": [1.5, None]}
    text = embed_json(payload)
    assert json.loads(text) == payload
    assert "<" not in text and ">" not in text and "&" not in text


def test_the_report_is_one_self_contained_file(run_dir, tmp_path, capsys):
    code, out, err = evo(capsys, "report", run_dir, "-o", tmp_path / "r.html")
    assert code == 0 and out == "" and "r.html" in err
    page = (tmp_path / "r.html").read_text()
    parser = Tags()
    parser.feed(page)
    names = [t for t, _ in parser.tags]
    # Nothing to fetch: no linked file of any kind, and the only scripts are inline.
    assert not [(t, a) for t, a in parser.tags if {"src", "href", "srcset", "data"} & set(a)]
    assert not {"link", "img", "iframe", "object", "embed"} & set(names)
    assert names.count("script") == 2 and names.count("style") == 1
    data = json.loads(parser.data["application/json"])
    elites = evo_json(capsys, "elites", run_dir)["elites"]
    assert [e["id"] for e in data["elites"]] == [e["id"] for e in elites]
    assert len(data["series"]["id"]) == 30 and data["series"]["id"] == list(range(30))
    assert data["series"]["arm"] == data["series"]["operator"]  # one unnamed model: arms are operators
    assert set(data["summary"]["llm"]["models"]) == {"offline-mutation"}
    assert data["summary"]["archive_digest"] == evo_json(capsys, "inspect", run_dir, "--no-test")["archive_digest"]
    # Every elite and every ancestor on its lineage can be opened.
    for e in elites:
        cid = e["id"]
        while True:
            detail = data["details"][str(cid)]
            if not detail["parents"]:
                break
            cid = detail["parents"][0]
        assert cid == 0
    # Written to RUN_DIR/report.html by default; "-" writes to standard output.
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    assert evo(capsys, "report", copy)[0] == 0 and (copy / "report.html").is_file()
    code, out, _ = evo(capsys, "report", run_dir, "-o", "-")
    assert code == 0 and out.startswith("<!DOCTYPE html>")


# ---- in a real browser -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        _skip_loudly(f"selenium is not installed ({exc}); install the test extra: pip install -e '.[test]'")
    binary = next((p for p in CHROMIUM if Path(p).is_file()), None)
    driver_path = next((p for p in CHROMEDRIVER if Path(p).is_file()), None)
    if binary is None or driver_path is None:
        _skip_loudly("chromium or chromedriver is missing; install them with"
                     " `apt-get install -y chromium chromium-driver` (.ci/run does)")
    options = Options()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="evo-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1300,1500"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium then never looks for (or downloads) a driver.
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _skip_loudly(reason: str) -> None:
    warnings.warn(f"BROWSER TEST SKIPPED: {reason}", stacklevel=2)
    pytest.skip(f"BROWSER TEST SKIPPED: {reason}")


def test_clicking_the_best_cell_shows_its_code_in_chromium(browser, hostile_report, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    page, info = hostile_report
    browser.get(page.as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert browser.execute_script("return window.__pwned") is None
    # Nothing was fetched: the page and its data are all in the file.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    db = sqlite3.connect(info["run"] / "run.sqlite")
    code_of = dict(db.execute("SELECT id, code FROM candidates"))
    elites = [row[0] for row in db.execute("SELECT id FROM candidates WHERE archive_status > 0")]
    db.close()

    cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap rect.cell")
    assert len(cells) == len(evo_json(capsys, "elites", info["run"])["elites"])
    assert "Click a cell" in browser.find_element(By.ID, "detail").text
    best = info["best"]
    browser.find_element(By.CSS_SELECTOR, f'#heatmap rect.cell[data-id="{best}"]').click()
    detail = browser.find_element(By.ID, "detail")
    assert detail.get_attribute("data-id") == str(best)
    assert browser.find_element(By.ID, "detail-code").get_property("textContent") == code_of[best]
    assert detail.find_element(By.CSS_SELECTOR, ".thought").get_property("textContent") == HOSTILE
    assert "selected" in browser.find_element(
        By.CSS_SELECTOR, f'#heatmap rect.cell[data-id="{best}"]').get_attribute("class")
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # An elite an operator made: its lineage leads back to the seed, and each step opens.
    made = [cid for cid in elites if cid > 0 and
            browser.find_elements(By.CSS_SELECTOR, f'#heatmap rect.cell[data-id="{cid}"]')]
    if made:
        browser.find_element(By.CSS_SELECTOR, f'#heatmap rect.cell[data-id="{made[0]}"]').click()
        steps = browser.find_elements(By.CSS_SELECTOR, "#detail ol.lineage a")
        assert steps[0].text == f"#{made[0]}" and steps[-1].text == "#0"
        steps[-1].click()
        assert browser.find_element(By.ID, "detail-code").get_property("textContent") == code_of[0]
    # The per-model table: one row for the run's one model.
    rows = browser.find_elements(By.CSS_SELECTOR, "#models-table tbody tr")
    assert len(rows) == 1 and rows[0].text.startswith("offline-mutation")
    # The charts are drawn: one line per series, none of them empty.
    for chart in ("chart-best", "chart-qd", "chart-coverage", "chart-pulls", "chart-reward", "chart-cost"):
        paths = browser.find_elements(By.CSS_SELECTOR, f"#{chart} path")
        assert paths and all(p.get_attribute("d").startswith("M") for p in paths), chart

