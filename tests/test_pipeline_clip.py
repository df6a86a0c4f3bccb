"""Input clipping (student.max_input_tokens) and the reuse of a repeated evaluation in the stage loop."""

from __future__ import annotations

import pytest

from baldistill_core.evaluation import evaluate
from baldistill_core.runs import records as runs
from baldistill_core.runs.pipeline import Pipeline
from baldistill_core.task.prompts import student_prompt
from _run_helpers import import_tiny, tiny_config


@pytest.fixture(scope="module")
def ws_conn(tmp_path_factory):
    from baldistill_core.workspace import open_workspace

    tmp = tmp_path_factory.mktemp("clip")
    ws, conn = open_workspace(tmp / "ws", bundled=False)
    import_tiny(conn, tmp / "data")
    yield ws, conn
    conn.close()


def _pipeline(ws_conn, **student):
    ws, conn = ws_conn
    run_id = runs.create_run(conn, ws.runs_dir, tiny_config(student=student))
    return Pipeline(conn, run_id)


def test_long_inputs_are_clipped_to_the_token_limit_in_the_training_and_ifd_prompt(ws_conn):
    p = _pipeline(ws_conn, max_input_tokens=8)
    text = "The International Cocoa Organization said exports rose sharply in the year to March " * 3
    clipped = p.view.clip(text)
    tok = p.view._tokenizer
    assert len(tok(clipped, add_special_tokens=False)["input_ids"]) == 8
    assert text.startswith(clipped) and len(clipped) < len(text)
    assert p.prompt_of(dict(input=text)) == student_prompt(p.view.instruction, clipped, "math")
    assert p.view.clip("What is 3 + 4?") == "What is 3 + 4?"  # short inputs are untouched


def test_without_a_limit_inputs_are_untouched(ws_conn):
    p = _pipeline(ws_conn)
    text = "word " * 500
    assert p.view.clip(text) == text
    assert p.view._tokenizer is None


def test_the_same_student_on_the_same_items_is_evaluated_once(ws_conn):
    ws, conn = ws_conn
    p = _pipeline(ws_conn)
    items = evaluate.eval_subset(conn, "tinymath", 1)
    first = p._evaluate(items, None)
    assert p._evaluate(items, None) is first              # the final eval reuses the last live one
    other = p._evaluate(evaluate.eval_subset(conn, "tinymath", 2), None)
    assert other is not first and len(other.predictions) == 2 * len(first.predictions)
