"""The static quiz page, end to end in headless Chromium (Debian's chromium, driven by Playwright)."""

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import REPO
from deepgrade.quiz import FREE, AnswerFormatError, load_bank, make_quiz, parse, write_html

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
    assert "Expected a 2x2 matrix: rows separated by ';'" in check(page, 1, "ten seven")
    assert check(page, 1, "ten seven").endswith("Received: 'ten seven'. " + FREE)
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


def test_a_wrong_count_costs_nothing_in_the_browser(page):
    page, quiz = page
    assert check(page, 1, "1 2 3") == ("Expected a 2x2 matrix (2 rows of 2 numbers, e.g. 1 2; 3 4). Received: 1 row of "
                                       "3 numbers (1 2 3). " + FREE)
    assert check(page, 4, "7 7") == "Expected 3 numbers (a 3-D shape, e.g. 28 28 1). Received: 2 numbers (7 7). " + FREE
    assert "Score: 0 / 7 (0 of 7 answered)" in page.locator("#score").text_content()
    assert page.locator("#q4 .explanation").is_hidden()  # nothing of the answer shown
    assert check(page, 1, "10 7; 8 12") == "Correct." and check(page, 4, "7, 7, 128") == "Correct."
    assert "Score: 2 / 7 (2 of 7 answered)" in page.locator("#score").text_content()
    assert page.locator("#q4 input.answer").get_attribute("placeholder") == "3 numbers, e.g. 28 28 1"


TEXTS = ["", "  ", "42", "3,328", "14.5", "1e400", "twelve", "1/2", "0.5", "-3", "+.5e1", "28 28", "28 28 1",
         "(None, 7, 7, 12)", "7x7x128", "[14, 14]", "1 2 3 4", "abc", "5²", "٣", "1 2 3", "10 7; 8 12", "10 7 8 12",
         "1 2; 3", "[[1, 2], [3, 4]]", "[[1, 2, 3]]", "[1, 2, 3, 4]", "[[1, 'a']]", "[[true]]", "nan 1; 2 3",
         "1 2 3; 4 5 6", "1 2 3; 4 5 6; 7 8 9", "5.75 4.25; 5.25 8.5", "it's", 'say "x"', "a\\b"]


def python_says(variant, text):
    try:
        value = parse(variant, text)
    except AnswerFormatError as exc:
        return {"error": str(exc)}
    return {"value": [list(r) for r in value] if variant.kind == "matrix" else
            list(value) if variant.kind == "shape" else value}


@pytest.mark.parametrize("name", ["pooling", "stride_padding", "parameters"])
def test_the_page_parses_like_python(browser, tmp_path, name):
    """The page's JavaScript parse gives the same values and the same words as deepgrade.quiz.questions.parse."""
    quiz = make_quiz(load_bank(name, REPO), "dana")
    page = browser.new_page()
    page.goto(write_html(quiz, tmp_path / f"{name}.html").as_uri())
    js = page.evaluate("""texts => data.map(q => texts.map(t => {
        try { return {value: parse(q, t)}; } catch (e) { return {error: e.message}; } }))""", TEXTS)
    page.close()
    compared = 0
    for variant, answers in zip(quiz.variants, js, strict=True):
        if variant.kind == "choice":
            continue  # the page's choices are radio buttons: only their own texts are ever parsed
        for text, got in zip(TEXTS, answers, strict=True):
            assert got == python_says(variant, text), (variant.id, text)
            compared += 1
    assert compared >= 200


def test_answers_not_in_plain_sight_but_the_counts_are(tmp_path):
    quiz = make_quiz(load_bank("stride_padding", REPO), "erin")
    html = write_html(quiz, tmp_path / "s.html").read_text()
    generated = [v for v in quiz.variants if v.params.get("generator") == "stack_shape"]  # not in any prompt
    assert generated
    for v in generated:
        if v.kind == "shape":
            assert ", ".join(map(str, v.answer)) not in html and " ".join(map(str, v.answer)) not in html
    assert html.count('placeholder="3 numbers, e.g. 28 28 1"') == sum(v.kind == "shape" for v in quiz.variants)


def saved(page, quiz):
    from deepgrade.quiz.html import storage_key

    raw = page.evaluate("key => localStorage.getItem(key)", storage_key(quiz))
    return json.loads(raw) if raw else None


def stored(context, url: str, quiz, expected: dict, timeout: float = 20.0) -> None:
    """Wait until another page of ``context`` reads ``expected`` from localStorage: the browser's own copy, which
    a reload reads (a page's writes reach it asynchronously; on a loaded machine a reload came first once)."""
    import time

    reader = context.new_page()
    try:
        deadline = time.monotonic() + timeout
        while True:
            reader.goto(url)
            found = saved(reader, quiz)
            if found == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert found == expected, f"the browser's localStorage never held the page's progress: {found}"
    finally:
        reader.close()


def test_progress_is_kept_in_the_browser_and_reset_clears_it(browser, tmp_path):
    """Answer, reload: the answers, attempts and score are back. Another student's page on the same browser
    starts fresh. Reset (confirmed) clears it all, also after a reload."""
    alice = make_quiz(load_bank("pooling", REPO), "alice")
    context = browser.new_context(offline=True)
    page = context.new_page()
    url = write_html(alice, tmp_path / "alice.html").as_uri()
    page.goto(url)
    assert "kept in this browser" in page.locator("#saved").text_content()
    assert check(page, 1, "10 7; 8 12") == "Correct."
    assert check(page, 2, "1 1; 1 1").startswith("Not quite.")
    assert check(page, 2, "5.75 4.25; 5.25 8.5") == "Correct."  # the first try counted
    assert check(page, 4, "7 7").startswith("Expected 3 numbers")  # a format error: not an attempt
    score = "Score: 1 / 7 (2 of 7 answered)"
    assert score in page.locator("#score").text_content()
    assert saved(page, alice) == {"answers": ["10 7; 8 12", "5.75 4.25; 5.25 8.5", None, None, None, None, None],
                                  "attempts": [1, 2, 0, 0, 0, 0, 0], "first": [True, False, None, None, None, None, None],
                                  "score": 1}
    stored(context, url, alice, saved(page, alice))

    page.reload(wait_until="load")
    expect(page.locator("#score")).to_contain_text(score)  # restored by the page's script (waits for it)
    assert page.locator("#q1 input.answer").input_value() == "10 7; 8 12"
    assert page.locator("#q1 .feedback").text_content() == "Correct."
    assert page.locator("#q2 .attempts").text_content().startswith("Attempts: 2")
    assert page.locator("#q4 input.answer").input_value() == "" and page.locator("#q4 .feedback").text_content() == ""
    assert check(page, 2, "1 1; 1 1").startswith("Not quite.") and score in page.locator("#score").text_content()

    # another student, and another quiz, on the same browser: their own progress
    other = context.new_page()
    other.goto(write_html(make_quiz(load_bank("pooling", REPO), "bob"), tmp_path / "bob.html").as_uri())
    assert "Score: 0 / 7 (0 of 7 answered)" in other.locator("#score").text_content()
    assert check(other, 1, "1 2; 3 4").startswith("Not quite.")
    other.goto(write_html(make_quiz(load_bank("stride_padding", REPO), "alice"), tmp_path / "sp.html").as_uri())
    assert "(0 of " in other.locator("#score").text_content()
    # alice's pooling quiz, written again to another file: hers, restored
    other.goto(write_html(alice, tmp_path / "again" / "alice.html").as_uri())
    assert score in other.locator("#score").text_content()
    other.close()

    page.reload(wait_until="load")
    expect(page.locator("#score")).to_contain_text(score)
    page.once("dialog", lambda d: d.dismiss())
    page.locator("#reset").click()
    expect(page.locator("#score")).to_contain_text(score)  # cancelled: nothing cleared
    page.once("dialog", lambda d: d.accept())
    page.locator("#reset").click()
    assert "Score: 0 / 7 (0 of 7 answered)" in page.locator("#score").text_content()
    assert page.locator("#q1 input.answer").input_value() == "" and page.locator("#q1 .feedback").text_content() == ""
    assert page.locator("#q1 .explanation").is_hidden() and page.locator("#q2 .attempts").is_hidden()
    assert saved(page, alice) is None
    page.reload(wait_until="load")
    expect(page.locator("#score")).to_contain_text("Score: 0 / 7 (0 of 7 answered)")
    assert check(page, 1, "10 7; 8 12") == "Correct."  # a fresh start: the first try counts again
    assert "Score: 1 / 7 (1 of 7 answered)" in page.locator("#score").text_content()
    context.close()
