"""Streaming import: chunked writes in one transaction, append mode, bounded memory. Real files, real SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import pytest

from baldistill_core import store
from baldistill_core.config import DatasetSpec
from baldistill_core.data import importing, reading
from baldistill_core.data.loading import DataError, bundled_specs, import_dataset, load_dataset


def _write(path, n, *, start=0, bad_at=None, dup_at=None, text_words=5, ids=True):
    with path.open("w", encoding="utf-8") as f:
        for i in range(start, start + n):
            if i == bad_at:
                f.write('{"id": "broken", "domain": \n')
                continue
            r = dict(domain=f"d{i % 7}", input=" ".join(f"w{i}x{j}" for j in range(text_words)), answer=str(i % 3))
            if ids:
                r["id"] = f"e{dup_at if i == dup_at + 1 else i}" if dup_at is not None else f"e{i}"
            f.write(json.dumps(r) + "\n")
    return path


def _spec(path, name="big", **kw):
    return DatasetSpec(name=name, train_path=str(path), task_type="qa", **kw)


def _snapshot(conn, name):
    d = store.get_dataset(conn, name)
    n = store.one(conn, "SELECT COUNT(*) AS n FROM examples WHERE dataset = ?", (name,))["n"]
    return d["content_hash"], d["n_train"], n


def test_a_bad_row_late_in_a_long_file_leaves_the_old_version_intact(empty_ws, tmp_path, monkeypatch):
    _, conn = empty_ws
    monkeypatch.setattr(importing, "CHUNK_ROWS", 500)   # many chunks are written before the bad row
    old = import_dataset(conn, _spec(_write(tmp_path / "v1.jsonl", 300)))
    before = _snapshot(conn, "big")
    assert before == (old.content_hash, 300, 300)
    bad = _write(tmp_path / "v2.jsonl", 20_000, bad_at=19_990)
    with pytest.raises(DataError, match=r"v2.jsonl: line 19991: not valid JSON"):
        import_dataset(conn, _spec(bad), replace=True)
    assert _snapshot(conn, "big") == before
    assert store.examples(conn, "big", ids=["e299"])[0]["input"].startswith("w299x0")
    assert store.examples(conn, "big", ids=["e5000"]) == []     # nothing of the failed file stayed


def test_a_duplicate_id_in_a_later_chunk_names_both_lines(empty_ws, tmp_path, monkeypatch):
    _, conn = empty_ws
    monkeypatch.setattr(importing, "CHUNK_ROWS", 100)
    p = _write(tmp_path / "t.jsonl", 1000, dup_at=10)   # line 12 repeats the id of line 11 (row 11)
    with pytest.raises(DataError, match=r"t.jsonl: line 12: id 'e10' repeats row 11; ids must be unique"):
        import_dataset(conn, _spec(p))
    assert store.get_dataset(conn, "big") is None
    p2 = tmp_path / "t2.jsonl"
    lines = _write(tmp_path / "base.jsonl", 1000).read_text().splitlines()
    lines[950] = lines[3]                                # row 951 repeats row 4, nine chunks later
    p2.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t2.jsonl: line 951: id 'e3' repeats row 4"):
        import_dataset(conn, _spec(p2))


def test_append_adds_parts_and_refuses_an_id_from_an_earlier_part(empty_ws, tmp_path):
    _, conn = empty_ws
    import_dataset(conn, _spec(_write(tmp_path / "p1.jsonl", 50)))
    r = import_dataset(conn, _spec(_write(tmp_path / "p2.jsonl", 40, start=50)), append=True)
    assert (r.n_train, r.added_train) == (90, 40)
    rows = store.examples(conn, "big")
    assert [e["id"] for e in rows] == [f"e{i}" for i in range(90)]     # rows numbered after part 1
    assert [e["row"] for e in rows] == list(range(90))
    before = _snapshot(conn, "big")
    with pytest.raises(DataError, match=r"p3.jsonl: line 1: id 'e20' repeats row 21 of an earlier part"):
        import_dataset(conn, _spec(_write(tmp_path / "p3.jsonl", 10, start=20)), append=True)
    assert _snapshot(conn, "big") == before
    # A part that is fine on its own but repeats an id of part 2 is refused the same way.
    with pytest.raises(DataError, match=r"id 'e89' repeats row 90 of an earlier part"):
        import_dataset(conn, _spec(_write(tmp_path / "p4.jsonl", 5, start=89)), append=True)
    assert _snapshot(conn, "big") == before
    # The content hash changes with every part, so maps cached for the old content are not reused.
    r3 = import_dataset(conn, _spec(_write(tmp_path / "p5.jsonl", 5, start=90)), append=True)
    assert r3.content_hash not in (before[0], r.content_hash) and r3.n_train == 95


def test_append_numbers_generated_ids_after_earlier_parts(empty_ws, tmp_path):
    _, conn = empty_ws
    spec = lambda p: _spec(p, id_field=None)   # noqa: E731
    import_dataset(conn, spec(_write(tmp_path / "a.jsonl", 3, ids=False)))
    import_dataset(conn, spec(_write(tmp_path / "b.jsonl", 2, start=3, ids=False)), append=True)
    assert [e["id"] for e in store.examples(conn, "big")] == [f"train-{i:06d}" for i in range(1, 6)]


def test_append_needs_an_existing_dataset_and_the_same_mapping(empty_ws, tmp_path):
    _, conn = empty_ws
    p = _write(tmp_path / "a.jsonl", 3)
    with pytest.raises(DataError, match="nothing to append to; import the first part without --append"):
        import_dataset(conn, _spec(p), append=True)
    import_dataset(conn, _spec(p))
    with pytest.raises(DataError, match="task_type is 'math' but the dataset's earlier parts used 'qa'"):
        import_dataset(conn, DatasetSpec(name="big", train_path=str(p), task_type="math"), append=True)


def test_streamed_hash_equals_the_in_memory_hash(empty_ws, tmp_path):
    """Bundled maps are matched by content hash: the streaming import must hash exactly as before."""
    _, conn = empty_ws
    for name, spec in bundled_specs().items():
        assert import_dataset(conn, spec).content_hash == load_dataset(spec).content_hash, name
    train, test = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    _write(train, 20)
    _write(test, 5, start=15)                    # e15..e19 also occur in train: test ids get 'test:'
    spec = _spec(train, name="ov", test_path=str(test))
    r = import_dataset(conn, spec)
    assert r.content_hash == load_dataset(spec).content_hash
    assert [e["id"] for e in store.examples(conn, "ov", "test")] == [f"test:e{i}" for i in range(15, 20)]
    assert any("5 test ids also occur in train" in w for w in r.warnings)


def test_memory_is_bounded_by_the_chunk_not_the_file(empty_ws, tmp_path):
    _, conn = empty_ws
    p = _write(tmp_path / "m.jsonl", 30_000, text_words=60)      # about 19 MB of text
    size_mb = p.stat().st_size / 1e6
    assert size_mb > 15
    tracemalloc.start()
    import_dataset(conn, _spec(p))
    _, stream_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    load_dataset(_spec(p))
    _, memory_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stream_peak / 1e6 < 10, stream_peak          # a few chunks of 2000 rows
    assert memory_peak > 5 * stream_peak                # the in-memory loader holds every row


def test_uploads_keep_their_limit_and_name_the_cli(monkeypatch, tmp_path):
    monkeypatch.setattr(reading, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(DataError, match=r"browser-upload limit; import it from disk instead, which has no size "
                                        r"limit: `baldistill data import NAME /path/to/up.jsonl`"):
        reading.read_table("up.jsonl", data=b'{"a": 1234567890}\n')
    p = tmp_path / "disk.jsonl"
    p.write_text('{"a": 1234567890}\n' * 3)
    assert len(reading.read_table(p)) == 3                   # a file on disk has no limit


def test_cli_append(tmp_path):
    ws = tmp_path / "ws"
    def cli(*a):
        return subprocess.run([sys.executable, "-m", "baldistill_core.cli", "data", "import", *a, "-w", str(ws)],
                              capture_output=True, text=True, timeout=300)
    r = cli("mine", str(_write(tmp_path / "a.jsonl", 30)), "--task-type", "qa")
    assert r.returncode == 0 and "imported mine: 30 train, 0 test, 7 domains" in r.stdout, r.stderr
    r = cli("mine", str(_write(tmp_path / "b.jsonl", 20, start=30)), "--task-type", "qa", "--append")
    assert r.returncode == 0 and "imported mine: 50 train" in r.stdout and "(+20 train" in r.stdout, r.stderr
    r = cli("mine", str(_write(tmp_path / "c.jsonl", 2, start=49)), "--task-type", "qa", "--append")
    assert r.returncode == 2 and "id 'e49' repeats row 50 of an earlier part" in r.stderr


@pytest.mark.slow
def test_a_million_row_import_failing_at_row_900000_keeps_the_old_version(empty_ws, tmp_path):
    """The issue's case at full size (about 30 s): 900,000 rows are written, in 450 chunks, before the bad one."""
    _, conn = empty_ws
    import_dataset(conn, _spec(_write(tmp_path / "v1.jsonl", 1000, text_words=2)))
    before = _snapshot(conn, "big")
    bad = _write(tmp_path / "v2.jsonl", 1_000_000, bad_at=899_999, text_words=2)
    with pytest.raises(DataError, match=r"v2.jsonl: line 900000: not valid JSON"):
        import_dataset(conn, _spec(bad), replace=True)
    assert _snapshot(conn, "big") == before
    assert store.examples(conn, "big", ids=["e899998"]) == []


def test_a_name_taken_between_the_check_and_the_write_is_refused_under_the_lock(empty_ws, tmp_path):
    # import_dataset checks the name before reading the file; another process may take the name before
    # the write lock is ours. import_stream checks again inside the transaction, so it never replaces.
    _, conn = empty_ws
    import_dataset(conn, _spec(_write(tmp_path / "a.jsonl", 30), name="shared"))
    before = _snapshot(conn, "shared")
    with pytest.raises(DataError, match="'shared' already exists.*--replace"):
        importing.import_stream(conn, _spec(_write(tmp_path / "b.jsonl", 12, start=500), name="shared"))
    assert _snapshot(conn, "shared") == before
    importing.import_stream(conn, _spec(tmp_path / "b.jsonl", name="shared"), replace=True)
    assert _snapshot(conn, "shared")[1] == 12


def test_demos_imported_by_another_process_meanwhile_are_kept(empty_ws, monkeypatch):
    from baldistill_core.data import loading

    _, conn = empty_ws
    assert sorted(loading.ensure_bundled(conn)) == sorted(bundled_specs())
    hashes = {d["name"]: d["content_hash"] for d in store.list_datasets(conn)}
    # A stale look: this process saw no demos, another imported them before our writes.
    monkeypatch.setattr(loading.store, "list_datasets", lambda c: [])
    assert loading.ensure_bundled(conn) == []
    monkeypatch.undo()
    assert {d["name"]: d["content_hash"] for d in store.list_datasets(conn)} == hashes


def test_processes_opening_a_fresh_workspace_together_all_succeed(tmp_path):
    # The dashboard and two workers may open one new workspace at once: each imports the demos only if
    # no one else has, and none fails (a worker that exited 2 here was a CI failure).
    code = ("import sys; from baldistill_core.workspace import open_workspace; "
            "w, c = open_workspace(sys.argv[1]); print(len(c.execute('SELECT name FROM datasets').fetchall()))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ws")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    assert {o[0].strip() for o in outs} == {str(len(bundled_specs()))}
