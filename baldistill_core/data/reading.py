"""Read raw rows from JSONL, CSV, Parquet or a saved Hugging Face `datasets` folder, one at a time.

``iter_table`` never holds the file: JSONL and CSV are decoded line by line, Parquet in record
batches, a `datasets` folder row by row from its memory map. Only a plain JSON array (``[...]``)
is parsed whole, since it has no line structure. Files on disk have no size limit; browser
uploads (``data=`` bytes) keep ``MAX_UPLOAD_BYTES``, and the message names the CLI that has none.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import IO, Iterator

from baldistill_core.errors import DataError

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
PARQUET_BATCH = 4096


def _not_utf8(name: str, lineno: int, err: UnicodeDecodeError, offset: int | None = None) -> DataError:
    where = f" at offset {offset}" if offset is not None else ""
    return DataError(
        f"{name}: line {lineno}: bytes are not UTF-8 (byte 0x{err.object[err.start]:02x}{where}); "
        f"re-save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 in > out`)"
    )


def check_upload_size(name: str, size: int, dataset: str | None = None) -> None:
    """Refuse an upload over the limit; a file on disk is imported by the CLI with no limit."""
    if size > MAX_UPLOAD_BYTES:
        raise DataError(
            f"{name}: {size / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB browser-upload limit; "
            f"import it from disk instead, which has no size limit: "
            f"`baldistill data import {dataset or 'NAME'} /path/to/{Path(name).name}` "
            f"(add `--append` to add a further part)"
        )


def _check_text(head: bytes, name: str) -> None:
    """Text never holds NUL bytes: a binary file is told so (UTF-16 files hold them too, and are named)."""
    if b"\x00" in head:
        hint = ("it looks like UTF-16: re-save it as UTF-8" if head[:2] in (b"\xff\xfe", b"\xfe\xff")
                else "upload a .jsonl, .csv or .parquet file, or export the data to one")
        raise DataError(f"{name}: not a text file (it holds binary data); {hint}")


def _suffix(p: Path) -> str:
    return "".join(p.suffixes[-1:]).lower()


def iter_table(path: str | Path, *, data: bytes | None = None, split: str = "train") -> Iterator[dict]:
    """Rows of a file (or of uploaded bytes named like ``path``) as dicts, one at a time.

    JSONL and CSV rows carry ``__line__`` (1-based line in the file) for error messages.

    >>> list(iter_table("x.jsonl", data=b'{"a": 1}\\n\\n{"a": 2}\\n'))
    [{'a': 1, '__line__': 1}, {'a': 2, '__line__': 3}]
    """
    p = Path(path)
    name = str(path)
    if data is None and p.is_dir():
        yield from _iter_hf_folder(p, split)
        return
    suffix = _suffix(p)
    if data is not None:
        check_upload_size(name, len(data))
    elif not p.exists():
        raise DataError(f"{name}: file not found; check the path")
    if suffix not in (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet", ".pq"):
        raise DataError(f"{name}: unknown file type {suffix or '(none)'!r}; use .jsonl, .csv, .parquet or a "
                        f"`datasets` folder")
    f: IO[bytes] = io.BytesIO(data) if data is not None else p.open("rb")
    with f:
        if suffix in (".parquet", ".pq"):
            yield from _iter_parquet(f, name)
            return
        _check_text(f.read(8192), name)
        f.seek(0)
        if suffix in (".csv", ".tsv"):
            yield from _iter_csv(f, name, delimiter="\t" if suffix == ".tsv" else ",")
        else:
            yield from _iter_jsonl(f, name)


def read_table(path: str | Path, *, data: bytes | None = None, split: str = "train") -> list[dict]:
    """All rows of a file as a list (small files and previews; the import streams with ``iter_table``)."""
    return list(iter_table(path, data=data, split=split))


def first_row(path: str | Path, *, data: bytes | None = None) -> dict:
    """The first row only (the upload form's column list): reads one line, not the file."""
    for r in iter_table(path, data=data):
        return r
    raise _empty(str(path))  # pragma: no cover (every reader raises on an empty file)


def _json_problem(e: json.JSONDecodeError) -> str:
    """'not valid JSON at column 7 (unterminated string starting here)': json's messages that end in
    'at' name the position themselves, so the column is said once.

    >>> try:
    ...     json.loads('{"a": "x')
    ... except json.JSONDecodeError as e:
    ...     _json_problem(e)
    'not valid JSON at column 7 (unterminated string starting here)'
    """
    msg = e.msg[:-3] + " here" if e.msg.endswith(" at") else e.msg
    return f"not valid JSON at column {e.colno} ({msg[:1].lower() + msg[1:]})"


def _iter_jsonl(f: IO[bytes], name: str) -> Iterator[dict]:
    head = f.read(4096)
    f.seek(0)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):  # a plain JSON array: parsed whole
        yield from _read_json_array(f.read(), name)
        return
    offset = n = 0
    for lineno, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(name, lineno, e, offset + e.start) from None
        offset += len(raw)
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{name}: line {lineno}: {_json_problem(e)}; fix or remove that line"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{name}: line {lineno}: expected a JSON object per line, got {type(obj).__name__}")
        obj["__line__"] = lineno
        n += 1
        yield obj
    if n == 0:
        raise _empty(name)


def _read_json_array(raw: bytes, name: str) -> list[dict]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(name, raw[: e.start].count(b"\n") + 1, e, e.start) from None
    try:
        arr = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{name}: line {e.lineno}: {_json_problem(e)}; fix the file") from None
    bad = [i for i, r in enumerate(arr) if not isinstance(r, dict)]
    if bad:
        raise DataError(f"{name}: item {bad[0]} is not an object; each item must be a JSON object")
    return arr


def _empty(name: str) -> DataError:
    return DataError(f"{name}: the file is empty; it needs at least one example")


def _iter_csv(f: IO[bytes], name: str, delimiter: str) -> Iterator[dict]:
    """CSV rows decoded as they are read. A header with no rows yields nothing (normalize says 'no rows')."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text, delimiter=delimiter)
    try:
        if not reader.fieldnames or not any(c.strip() for c in reader.fieldnames):
            raise _empty(name)
        for r in reader:
            if None in r:
                raise DataError(f"{name}: line {reader.line_num}: more values than header columns; quote fields "
                                f"that contain '{delimiter}'")
            r["__line__"] = reader.line_num
            yield r
    except UnicodeDecodeError as e:
        raise _not_utf8(name, reader.line_num + 1, e) from None
    except csv.Error as e:
        raise DataError(f"{name}: line {reader.line_num}: CSV error ({e}); check the quoting") from None


def _iter_parquet(f: IO[bytes], name: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
        batches = pf.iter_batches(batch_size=PARQUET_BATCH)
        n = 0
        for b in batches:
            for r in b.to_pylist():
                n += 1
                yield r
    except DataError:
        raise
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{name}: not a readable Parquet file ({e}); re-export it") from None
    if n == 0:
        raise _empty(name)


def _iter_hf_folder(p: Path, split: str) -> Iterator[dict]:
    try:
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(p))
    except Exception as e:
        raise DataError(
            f"{p}: not a saved `datasets` folder ({e}); save one with `Dataset.save_to_disk` or pass a file"
        ) from None
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise DataError(f"{p}: no split {split!r}; the folder has splits: {', '.join(ds.keys())}")
        ds = ds[split]
    yield from ds
