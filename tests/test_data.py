"""Dataset loading: good files in every format, and bad files whose errors name the problem and the fix."""

from __future__ import annotations

import json

import pytest

from baldistill_core import store
from baldistill_core.data import loading as data
from baldistill_core.data import reading
from baldistill_core.config import DatasetSpec
from baldistill_core.data.loading import DataError, import_dataset, load_dataset, read_table


def _rows(n=6):
    doms = ["alpha", "alpha", "alpha", "beta", "beta", "gamma"]
    return [dict(id=f"e{i}", domain=doms[i % len(doms)], input=f"text {i}", answer=f"label{i % 2}") for i in range(n)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def spec_for(path, **kw):
    return DatasetSpec(name="up", train_path=str(path), **kw)


def test_bundled_datasets_import_with_their_domains(ws):
    _, conn = ws
    math_counts = store.domain_counts(conn, "math_lt")
    r52_counts = store.domain_counts(conn, "r52")
    assert len(math_counts) == 7 and sum(math_counts.values()) == 4125
    assert math_counts["Algebra"] == 1744 and math_counts["Precalculus"] == 187
    assert len(r52_counts) == 52 and sum(r52_counts.values()) == 6532
    assert r52_counts["platinum"] == 1
    assert store.get_dataset(conn, "r52")["n_test"] == 2568
    assert "Reuters" in store.get_dataset(conn, "r52")["readme"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_every_format_loads_the_same_rows(tmp_path, fmt):
    rows = _rows()
    if fmt == "jsonl":
        path = _write_jsonl(tmp_path / "t.jsonl", rows)
    elif fmt == "csv":
        import csv

        path = tmp_path / "t.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "t.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        from datasets import Dataset

        path = tmp_path / "hf"
        Dataset.from_list(rows).save_to_disk(str(path))
    loaded = load_dataset(spec_for(path))
    assert [(e["id"], e["domain"], e["input"], e["answer"]) for e in loaded.train] == [
        (r["id"], r["domain"], r["input"], r["answer"]) for r in rows
    ]
    assert loaded.label_set == ["label0", "label1"]


def test_malformed_json_line_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = json.dumps(_rows()[0])
    p.write_text(f"{good}\n{good.replace('e0', 'e1')}\n{{\"id\": \"e2\", \"input\": \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl: line 3: not valid JSON"):
        read_table(p)


def test_json_error_says_the_position_once(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "e0", "input": "unterminated', encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_table(p)
    assert "at at" not in str(e.value)
    assert "not valid JSON at column 23 (unterminated string starting here)" in str(e.value)


def test_missing_field_lists_columns_and_the_flag(tmp_path):
    p = _write_jsonl(tmp_path / "t.jsonl", _rows())
    with pytest.raises(DataError) as e:
        load_dataset(spec_for(p, domain_field="subject"))
    msg = str(e.value)
    assert "domain column 'subject' not found" in msg
    assert "columns are: id, domain, input, answer" in msg and "--domain-field" in msg


def test_empty_value_names_the_line_and_field(tmp_path):
    rows = _rows()
    rows[3]["answer"] = "  "
    p = _write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataError, match=r"line 4: field 'answer' \(answer\) is missing or empty"):
        load_dataset(spec_for(p))


def test_empty_file(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        read_table(p)


def test_non_utf8_names_the_line_and_the_fix(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b'{"id": "a", "domain": "x", "input": "ok", "answer": "1"}\n{"id": "b", "input": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"line 2: bytes are not UTF-8 .*iconv"):
        read_table(p)


def test_duplicate_ids_are_refused(tmp_path):
    rows = _rows()
    rows[4]["id"] = "e1"
    p = _write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataError, match=r"id 'e1' repeats row 2"):
        load_dataset(spec_for(p))


def test_domain_with_one_example_loads_with_a_warning(tmp_path):
    p = _write_jsonl(tmp_path / "t.jsonl", _rows())
    loaded = load_dataset(spec_for(p))
    assert any("single training example (gamma)" in w for w in loaded.warnings)
    assert sum(e["domain"] == "gamma" for e in loaded.train) == 1


def test_single_label_classification_is_refused(tmp_path):
    rows = [dict(r, answer="same") for r in _rows()]
    p = _write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataError, match="at least 2 labels"):
        load_dataset(spec_for(p))


def test_no_domain_column_puts_everything_in_one_domain(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "domain"} for r in _rows()]
    p = _write_jsonl(tmp_path / "t.jsonl", rows)
    loaded = load_dataset(spec_for(p, domain_field=None, id_field=None))
    assert {e["domain"] for e in loaded.train} == {data.NO_DOMAIN}
    assert loaded.train[0]["id"] == "train-000001"


def test_failed_import_keeps_the_previous_version(empty_ws, tmp_path):
    _, conn = empty_ws
    p = _write_jsonl(tmp_path / "t.jsonl", _rows())
    import_dataset(conn, spec_for(p))
    bad = tmp_path / "t2.jsonl"
    bad.write_text(p.read_text() + "{oops\n", encoding="utf-8")
    with pytest.raises(DataError):
        import_dataset(conn, spec_for(bad))
    assert store.get_dataset(conn, "up")["n_train"] == 6


def test_hundred_thousand_rows(empty_ws, tmp_path):
    _, conn = empty_ws
    p = tmp_path / "big.jsonl"
    with p.open("w", encoding="utf-8") as f:
        for i in range(100_000):
            f.write(json.dumps(dict(id=str(i), domain=f"d{i % 37}", input=f"input {i}", answer=str(i % 3))) + "\n")
    loaded = import_dataset(conn, spec_for(p))
    assert loaded.n_train == 100_000
    assert len(store.domain_counts(conn, "up")) == 37


def test_upload_bytes_and_size_limit(monkeypatch):
    rows = read_table("up.jsonl", data=b'{"a": 1}\n')
    assert rows[0]["a"] == 1
    monkeypatch.setattr(reading, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(DataError, match="over the .* limit"):
        read_table("up.jsonl", data=b'{"a": 1234567890}\n')


def test_csv_with_extra_values_names_the_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id,domain,input,answer\n1,a,hello,x\n2,b,hello, world,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: more values than header columns"):
        read_table(p)


def test_bad_dataset_name_says_what_is_allowed():
    with pytest.raises(ValueError, match="letters, digits"):
        DatasetSpec(name="../etc", train_path="x.jsonl")


def test_uploads_never_read_server_paths(tmp_path):
    good = b'{"id": "1", "domain": "a", "input": "x", "answer": "p"}\n{"id": "2", "domain": "b", "input": "y", "answer": "q"}\n'
    spec = DatasetSpec(name="up", train_path="t.jsonl")
    assert len(load_dataset(spec, uploads={"t.jsonl": good}).train) == 2
    with pytest.raises(DataError, match="not a plain file name"):
        load_dataset(DatasetSpec(name="up", train_path="../t.jsonl"), uploads={"../t.jsonl": good})
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(good)
    with pytest.raises(DataError, match="not among the uploaded files"):
        load_dataset(DatasetSpec(name="up", train_path="t.jsonl", test_path=str(secret)), uploads={"t.jsonl": good})


def test_confine_refuses_dotdot_and_symlinks_out(tmp_path):
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "ok.jsonl").write_text("{}")
    assert data.confine(ws / "data" / "ok.jsonl", [ws]) == (ws / "data" / "ok.jsonl").resolve()
    with pytest.raises(DataError, match="outside the workspace"):
        data.confine(ws / "data" / ".." / ".." / "elsewhere.jsonl", [ws])
    (ws / "link").symlink_to(tmp_path)
    with pytest.raises(DataError, match="outside the workspace"):
        data.confine(ws / "link" / "x.jsonl", [ws])
