"""The interactive page of `attend explain --html`: self-contained, and it really works in a browser.

The browser tests drive headless Chromium: click and hover output tokens, switch
heads, step through decoding, and compare what the page shows with the trace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attend.checkpoint import load_model
from attend.explain.page import render_page, write_page
from attend.explain.trace import trace

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                   reason="browser test needs /usr/bin/chromium and /usr/bin/chromedriver")
SOURCE = "d b e c"  # the reverse task's symbols are the letters a..h (3 1 4 2 spelled in its vocabulary)
EVIL = 'rnn </script><script>window.pwned = 1</script> & "quotes"'


@pytest.fixture(scope="module")
def transformer_traces(trained_folder):
    loaded = load_model(trained_folder)
    return trace(loaded, SOURCE, beam_size=3), trace(loaded, SOURCE, label="greedy")


@pytest.fixture(scope="module")
def rnn_trace(rnn_folders):
    return trace(load_model(rnn_folders["rnn"]), SOURCE, beam_size=2, label=EVIL)


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1400,1100",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def open_page(driver, path: Path):
    from selenium.webdriver.common.by import By

    driver.get(path.as_uri())
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "the page's script failed"
    return driver.find_elements(By.CSS_SELECTOR, ".panel")


def css(node, selector):
    from selenium.webdriver.common.by import By

    return node.find_elements(By.CSS_SELECTOR, selector)


def weights(nodes) -> list[float]:
    return [float(n.get_attribute("data-weight")) for n in nodes]


def test_page_is_self_contained_and_escapes_script_tags(transformer_traces, rnn_trace):
    text = render_page([transformer_traces[0], rnn_trace])
    assert "http://" not in text and "https://" not in text  # nothing to fetch: no CDN, fonts or links
    assert "<link" not in text and " src=" not in text
    assert "window.pwned" in text and "</script><script>window.pwned" not in text
    data = re.search(r'<script type="application/json" id="attend-data">(.*?)</script>', text, re.S).group(1)
    assert json.loads(data) == json.loads(json.dumps([transformer_traces[0].to_dict(), rnn_trace.to_dict()]))


@needs_browser
def test_page_in_browser(transformer_traces, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    beam, greedy = transformer_traces
    panels = open_page(browser, write_page([beam, greedy], tmp_path / "page.html"))
    assert len(panels) == 2  # side by side, as with --compare
    panel = panels[0]
    average = beam.cross[-1].mean(axis=0)  # (T, S), what the page shows by default

    css(panel, '[data-tgt="0"]')[0].click()
    first = weights(css(panel, "[data-src]"))
    assert "selected" in css(panel, '[data-tgt="0"]')[0].get_attribute("class")
    np.testing.assert_allclose(first, average[0], atol=2e-4)
    css(panel, '[data-tgt="2"]')[0].click()
    second = weights(css(panel, "[data-src]"))
    assert second != first
    np.testing.assert_allclose(second, average[2], atol=2e-4)
    ActionChains(browser).move_to_element(css(panel, '[data-tgt="1"]')[0]).perform()  # hover previews
    np.testing.assert_allclose(weights(css(panel, "[data-src]")), average[1], atol=2e-4)

    before = weights(css(panel, "table.heatmap td"))
    np.testing.assert_allclose(before, average.ravel(), atol=2e-4)
    Select(css(panel, "select.head-select")[0]).select_by_index(1)  # head 1 instead of the average
    after = weights(css(panel, "table.heatmap td"))
    assert after != before
    np.testing.assert_allclose(after, beam.cross[-1][0].ravel(), atol=2e-4)

    assert len(beam.tgt_tokens) >= 4, "the tiny model should reverse 4 symbols into at least 3 tokens and </s>"
    for step in range(3, min(5, len(beam.tgt_tokens))):  # token 2 is pinned, so ▶ goes to steps 3 and 4
        css(panel, "button.step-next")[0].click()
        shown = [(li.get_attribute("data-token"), float(li.get_attribute("data-prob"))) for li in css(panel, "ol.alternatives li")]
        assert [tok for tok, _ in shown] == [tok for tok, _ in beam.alternatives[step]]
        np.testing.assert_allclose([p for _, p in shown], [p for _, p in beam.alternatives[step]], atol=1e-4)
        assert "selected" in css(panel, f'[data-tgt="{step}"]')[0].get_attribute("class")
        assert css(panel, ".decoded .current")[0].text == beam.tgt_tokens[step]
    css(panel, "button.step-prev")[0].click()
    assert css(panel, "ol.alternatives li")[0].get_attribute("data-token") == beam.alternatives[3][0][0]

    nodes = css(panel, "svg.beam-tree .node")
    assert len(nodes) > len(beam.beam_steps) and css(panel, "svg.beam-tree .ended")
    assert css(panel, "svg.beam-tree .ended.best")  # the output's hypothesis is marked
    assert not css(panels[1], "svg.beam-tree")  # greedy search has no beams to draw

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000


@needs_browser
def test_page_without_attention_says_so(rnn_trace, browser, tmp_path):
    assert "cross" not in rnn_trace.maps
    (panel,) = open_page(browser, write_page([rnn_trace], tmp_path / "rnn.html"))
    assert browser.execute_script("return window.pwned") is None  # the label's </script> did not escape
    assert css(panel, "h2")[0].text == EVIL
    note = css(panel, ".no-attention")
    assert note and "no attention" in note[0].text and "final state" in note[0].text
    assert not css(panel, "table.heatmap")
    css(panel, "button.step-next")[0].click()
    assert len(css(panel, "ol.alternatives li")) == len(rnn_trace.alternatives[0])
    assert all(c.get_attribute("data-weight") == "" for c in css(panel, "[data-src]"))
