"""AppTest of the Data page's import form with a file inside the workspace folder: no upload, no size limit,
paths outside the workspace refused, append adds a part."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from baldistill_core import store

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "data.py")


def _write(path: Path, n: int, start: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            f.write(json.dumps(dict(id=f"e{i}", domain=f"d{i % 4}", input=f"text {i}", answer=str(i % 2))) + "\n")


def _import(at: AppTest, rel: str, name: str, append: bool = False) -> AppTest:
    at.radio(key="upload_source").set_value("File in the workspace folder").run()
    at.text_input(key="upload_server_path").input(rel).run()
    assert not at.error, [e.value for e in at.error]
    next(t for t in at.text_input if t.label == "Dataset name").input(name)
    if append:
        at.checkbox(key="upload_append").check()
    next(b for b in at.button if b.label == "Validate and import").click()
    return at.run()


def test_import_a_workspace_file_then_append_a_part(page_env):
    _write(page_env / "data" / "part1.jsonl", 3000)
    _write(page_env / "data" / "part2.jsonl", 500, start=3000)
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    assert not at.exception, at.exception
    at = _import(at, "data/part1.jsonl", "mine")
    assert not at.exception, at.exception
    assert any("Imported mine: 3,000 training" in s.value for s in at.success), [s.value for s in at.success]
    at = _import(at, "data/part2.jsonl", "mine", append=True)
    assert any("Imported mine: 3,500 training" in s.value and "this part: 500" in s.value for s in at.success)
    conn = store.connect(page_env / "studio.db")
    assert store.get_dataset(conn, "mine")["n_train"] == 3500
    conn.close()


def test_a_path_outside_the_workspace_is_refused(page_env, tmp_path):
    _write(tmp_path / "outside.jsonl", 10)
    at = AppTest.from_file(PAGE, default_timeout=240).run()
    at.radio(key="upload_source").set_value("File in the workspace folder").run()
    at.text_input(key="upload_server_path").input("../outside.jsonl").run()
    assert any("outside the workspace" in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.label == "Validate and import"]
