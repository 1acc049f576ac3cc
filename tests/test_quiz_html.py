"""The static quiz page, end to end in headless Chromium (Debian's chromium, driven by Playwright)."""

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from deepgrade.quiz import load_bank, make_quiz, write_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    """A phone-sized page with the pooling quiz for alice, opened from a file with the network blocked."""
    quiz = make_quiz(load_bank("pooling", REPO), "alice")
    path = write_html(quiz, tmp_path / "pooling.html")
    context = browser.new_context(viewport={"width": 390, "height": 844}, offline=True)
    page = context.new_page()
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    yield page, quiz
    assert errors == [], errors
    assert all(url.startswith("file://") for url in requests), requests  # self-contained: nothing fetched
    context.close()


def check(page, number, text):
    section = page.locator(f"#q{number}")
    section.locator("input.answer").fill(text)
    section.locator("button.check").click()
    return section.locator(".feedback").text_content()


def test_answers_are_checked_in_the_browser(page):
    page, quiz = page
    assert "Score: 0 / 7 (0 of 7 answered)" in page.locator("#score").text_content()
    assert "Expected a matrix" in check(page, 1, "ten seven") and "costs nothing" in check(page, 1, "ten seven")
    assert "0 of 7 answered" in page.locator("#score").text_content()
    assert check(page, 1, "10 7; 8 12") == "Correct."
    assert page.locator("#q1 .explanation").is_visible()
    assert check(page, 2, "5.7 4.2; 5.2 8.5").startswith("Not quite.")  # outside the 0.01 tolerance
    assert check(page, 2, "5.75 4.25; 5.25 8.5") == "Correct."  # right now, but the first try counted
    assert check(page, 3, "[[10, 7, 7], [6, 9, 9], [8, 12, 12]]") == "Correct."
    assert check(page, 4, "7x7x128") == "Correct."
    for number, variant in enumerate(quiz.variants[4:], start=5):
        assert check(page, number, "; ".join(" ".join(f"{x:g}" for x in row) for row in variant.answer)) == "Correct."
    assert "Score: 6 / 7 (7 of 7 answered)" in page.locator("#score").text_content()


def test_hint_and_choice_questions(browser, tmp_path):
    quiz = make_quiz(load_bank("convolution", REPO), "bob")
    path = write_html(quiz, tmp_path / "convolution.html")
    page = browser.new_page()
    page.goto(path.as_uri())
    page.locator("#q1 button.show-hint").click()
    assert "It gives convolutional neural networks their name." in page.locator("#q1 .hint").text_content()
    page.locator("#q1 input[value='Convolution']").check()
    page.locator("#q1 button.check").click()
    assert page.locator("#q1 .feedback").text_content() == "Correct."
    page.locator("#q2 input[value='The kernel']").check()
    page.locator("#q2 button.check").click()
    assert page.locator("#q2 .feedback").text_content().startswith("Not quite.")
    assert "Score: 1 / 11 (2 of 11 answered)" in page.locator("#score").text_content()
    page.screenshot(path=str(tmp_path / "convolution.png"))
    page.close()


def test_answers_are_not_in_plain_sight(tmp_path):
    quiz = make_quiz(load_bank("parameters", REPO), "carol")
    html = write_html(quiz, tmp_path / "p.html").read_text()
    assert "200960" not in html and "3328" not in html
