"""Answer extraction, shared by the teacher filter and evaluation: unit cases, the real recorded
rationales of the bundled data, and property tests on arbitrary text."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baldistill_core.task.answers import extract_answer, is_correct, normalize_answer, normalize_math, token_f1
from baldistill_core.data.loading import BUNDLED_DIR

R52 = BUNDLED_DIR / "r52"
MATH = BUNDLED_DIR / "math_lt"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def r52():
    train = {r["id"]: r for r in _jsonl(R52 / "train.jsonl")}
    labels = sorted({r["answer"] for r in train.values()})
    return train, labels, _jsonl(R52 / "teacher_rationales.jsonl")


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("text, want", [
    ("The story is reporting quarterly results.", None),             # the original substring bug: not "tin"
    ("Reporting on earnings. The answer is: earn", "earn"),
    ('The topic is "acq" (acquisitions).', "acq"),
    ("It mentions tin prices but the topic is 'money-fx'.", "money-fx"),
    ("Natural gas prices rose. The answer is: nat-gas", "nat-gas"),
    ("This is about nat-gas pipelines.", "nat-gas"),                 # never "gas" inside "nat-gas"
    ("Earlier I said tin. The answer is: earn", "earn"),             # last answer sentence wins
    ("The answer is: EARN.", "earn"),
    ("the most appropriate topic would be:earnThis is because", "earn"),
    ("**Answer:** money-fx", "money-fx"),
    ("", None),
])
def test_classification_whole_labels(text, want):
    labels = ["acq", "earn", "gas", "money-fx", "nat-gas", "tin"]
    assert extract_answer(text, "classification", labels) == want


def test_multi_word_labels():
    labels = ["interest rates", "interest", "trade"]
    assert extract_answer("So the answer is: Interest  Rates.", "classification", labels) == "interest rates"
    assert extract_answer("about interest and trade balances", "classification", labels) == "trade"


def test_recorded_r52_rows_misread_as_tin_get_the_right_label(r52):
    train, labels, rats = r52
    tin = [r for r in rats if r["teacher_answer"] == "tin" and train[r["id"]]["answer"] != "tin"]
    assert len(tin) > 500  # the substring parser's favourite mistake in the paper's data
    row = next(r for r in tin if r["id"] == "r52-train-00010")
    assert train[row["id"]]["answer"] == "acq"
    assert extract_answer(row["rationale"], "classification", labels) == "acq"
    got = [extract_answer(r["rationale"], "classification", labels) for r in tin]
    assert sum(g == train[r["id"]]["answer"] for g, r in zip(got, tin)) >= 0.9 * len(tin)
    has_tin_word = [bool(re.search(r"(?<![\w-])tin(?![\w-])", r["rationale"], re.I)) for r in tin]
    assert all(g != "tin" or w for g, w in zip(got, has_tin_word)), "'tin' only when the word is there"


def test_recorded_r52_mismatch_that_is_a_real_teacher_error_stays_a_mismatch(r52):
    train, labels, rats = r52
    row = next(r for r in rats if r["id"] == "r52-train-00009")  # gold earn, teacher chose "acq"
    pred = extract_answer(row["rationale"], "classification", labels)
    assert pred == "acq" and not is_correct(pred, train[row["id"]]["answer"], "classification")


def test_recorded_r52_overall_agreement(r52):
    train, labels, rats = r52
    ok = sum(is_correct(extract_answer(r["rationale"], "classification", labels), train[r["id"]]["answer"],
                        "classification") for r in rats)
    old = sum(r["teacher_answer"] == train[r["id"]]["answer"] for r in rats)
    assert ok > old + 1000, (ok, old)  # the old parser lost ~1,400 good rationales


# ---------------------------------------------------------------- math


@pytest.mark.parametrize("a, b", [
    (r"\boxed{\frac{1}{2}}", "1/2"), (r"\dfrac{3}{4}", r"\frac34"), (r"$\frac{\sqrt{3}}{2}$", r"\frac{\sqrt3}{2}"),
    (r"\left( 1, 2 \right)", "(1,2)"), ("5.", "5"), (r"10\text{ cm}", "10"), ("0.5", r"\frac{1}{2}"),
    ("1,000", "1000"), (r"x = 7", "7"), (r"30^\circ", "30"), (r"2007 + \frac\pi 2", r"2007+\frac{\pi}{2}"),
])
def test_math_equivalences(a, b):
    assert is_correct(a, b, "math"), (normalize_math(a), normalize_math(b))


@pytest.mark.parametrize("a, b", [("1/3", "0.33"), ("(1,2)", "(2,1)"), ("x+1", "x-1"), ("12", "21")])
def test_math_differences(a, b):
    assert not is_correct(a, b, "math")


def test_math_prefers_answer_sentence_then_last_boxed():
    assert extract_answer(r"First \boxed{3}. The answer is: 4.", "math") == "4"
    assert extract_answer(r"Try \boxed{3}, no: \boxed{\dfrac{5}{2}}", "math") == "5/2"
    assert extract_answer(r"The answer is: $\boxed{12}$ square units.", "math") == "12"
    assert extract_answer("The answer is: 3.5 hours", "math") == "3.5hours"
    assert extract_answer("no answer here", "math") is None


def test_recorded_math_rationales_agree_with_gold():
    train = {r["id"]: r for r in _jsonl(MATH / "train.jsonl")}
    rats = _jsonl(MATH / "teacher_rationales.jsonl")
    ok = sum(is_correct(extract_answer(r["rationale"], "math"), train[r["id"]]["answer"], "math") for r in rats)
    assert ok >= 0.99 * len(rats), (ok, len(rats))


# ---------------------------------------------------------------- multiple choice and QA


@pytest.mark.parametrize("text, want", [
    ("The answer is: (B)", "B"), ("so B) is right", "B"), ("A) no. C) yes. The answer is C.", "C"),
    ("I pick option D", "D"), ("nothing", None), ("(a)", "A"),
])
def test_multiple_choice(text, want):
    assert extract_answer(text, "multiple_choice") == want


def test_qa_and_token_f1():
    assert extract_answer("Thinking... The answer is: the Eiffel Tower.", "qa") == "the Eiffel Tower"
    assert is_correct("The Eiffel tower", "eiffel tower!", "qa")
    assert token_f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert normalize_answer("(c)", "multiple_choice") == "C"


def test_unknown_task_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task type"):
        extract_answer("x", "poetry")


# ---------------------------------------------------------------- properties

LABELS = ["acq", "earn", "money-fx", "nat-gas", "tin", "interest rates"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), task=st.sampled_from(["classification", "math", "multiple_choice", "qa"]))
def test_extraction_never_crashes(text, task):
    got = extract_answer(text, task, LABELS)
    assert got is None or isinstance(got, str)
    if task == "classification" and got is not None:
        assert got in LABELS
    is_correct(got, text, task)
    normalize_answer(text, task)


@settings(max_examples=200, deadline=None)
@given(prefix=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
       label=st.sampled_from(LABELS))
def test_answer_sentence_always_wins(prefix, label):
    text = f"{prefix}\nThe answer is: {label}"
    assert extract_answer(text, "classification", LABELS) == label


@settings(max_examples=150, deadline=None)
@given(num=st.integers(-10**6, 10**6), den=st.integers(1, 1000))
def test_fraction_forms_agree(num, den):
    assert is_correct(rf"\frac{{{num}}}{{{den}}}", f"{num}/{den}", "math")
    assert is_correct(rf"\boxed{{{num}}}", str(num), "math")


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="{}\\$()[]^_ abcfrdtxboe0123456789", max_size=120))
def test_latex_soup_never_crashes(text):
    normalize_math(text)
    extract_answer(text, "math")
