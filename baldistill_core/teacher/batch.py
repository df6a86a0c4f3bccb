"""Batch mode for the OpenAI-compatible teacher (``teacher.mode: batch``).

``Teacher._execute`` hands the calls that missed the cache to ``run_batch``: they are written as one
JSONL request file (one ``{"custom_id", "method", "url", "body"}`` line per call — the format of the
OpenAI batch API and of vLLM's offline runner ``python -m vllm.entrypoints.openai.run_batch``), uploaded
through ``/v1/files``, submitted as a batch and polled every ``batch_poll_s``. The replies go into the
same teacher cache and ledger as single calls, priced at ``batch_price_factor`` times the per-call prices.

Crash safety: the batch row (table ``teacher_batches``, id = fingerprint of run + model + cache keys, plus
a generation number) and its lines are written *before* the upload, the file id and the endpoint's batch
id as soon as they are known, and the batch carries ``metadata.baldistill_batch`` = the row id. A worker
killed at any point finds the row again on resume (the remaining calls have the same keys): it polls
the stored batch id, or — killed between create and store — finds the batch by its metadata, so it
never submits twice.

Failures: lines that failed (error file, non-200 status) or never ran (an expired batch, one cancelled
elsewhere) are left out of the result, and the caller retries just those as single calls. A run cancel
seen while polling cancels the remote batch and re-raises; a resume after that submits the rest anew.
"""

from __future__ import annotations

import hashlib
import json
import time

from baldistill_core import store
from baldistill_core.teacher import ledger
from baldistill_core.teacher.backends import Reply, TeacherCallError, TeacherConfigError, _safe, reply_of
from baldistill_core.teacher.parsing import parse_items

ACTIVE = ("preparing", "validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")
ENDPOINT = "/v1/chat/completions"


def custom_id(purpose: str, context: dict, key: str) -> str:
    """``rationale:<example id>:<key>``, ``synthesis:<domain>:<key>`` … (the importer reads these back)."""
    what = context.get("id") if purpose == "rationale" else context.get("domain")
    return f"{purpose}:{what or 'item'}:{key[:16]}"


def request_line(backend, call) -> dict:
    return {"custom_id": custom_id(call.purpose, call.context, call.key), "method": "POST", "url": ENDPOINT,
            "body": backend.chat_body(call.messages, call.params)}


def request_file(backend, calls) -> bytes:
    """The JSONL batch request file of ``calls`` (their ``key`` set)."""
    return "".join(json.dumps(request_line(backend, c), ensure_ascii=False) + "\n" for c in calls).encode("utf-8")


def _fingerprint(run_id: str | None, model: str, keys: list[str]) -> str:
    h = hashlib.sha256(f"{run_id or ''}\x1f{model}\x1f".encode())
    for k in sorted(keys):
        h.update(k.encode())
    return "tb-" + h.hexdigest()[:24]


def _latest(conn, fp: str) -> dict | None:
    return store.one(conn, "SELECT * FROM teacher_batches WHERE id LIKE ? ORDER BY created_at DESC, id DESC LIMIT 1",
                     (fp + "-%",))


def _update(conn, bid: str, **fields) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE teacher_batches SET {sets}, updated_at = ? WHERE id = ?",
                 (*fields.values(), store.now(), bid))


def _consumed(conn, bid: str) -> bool:
    return store.one(conn, "SELECT COUNT(*) AS n FROM teacher_batch_lines WHERE batch_id = ? AND status = 'pending'",
                     (bid,))["n"] == 0


def batches_of_run(conn, run_id: str) -> list[dict]:
    """The run's batches, newest first: state and counts for the Training page."""
    return store.rows(conn, "SELECT id, purpose, remote_id, status, n_lines, n_completed, n_failed, submissions,"
                            " error, created_at, updated_at FROM teacher_batches WHERE run_id = ?"
                            " ORDER BY created_at DESC", (run_id,))


def write_request_file(teacher, items: list[dict], path) -> int:
    """Write the rationale calls of ``items`` as a batch request file (run it with vLLM's offline
    runner or any batch API; import its result file with ``baldistill teacher import``)."""
    from pathlib import Path

    calls = [teacher._rationale_call(it) for it in items]
    for c in calls:
        c.key = teacher._key(c)
    Path(path).write_bytes(request_file(teacher.backend, calls))
    return len(calls)


def rationale_batch_of(teacher):
    """A function from a training row (example_id, input, answer, domain) to the endpoint's id of the
    batch its rationale came back in, or None (for the provenance of exports)."""
    from baldistill_core.selection.select import duplicate_source

    def of(row: dict) -> str | None:
        item = {"id": duplicate_source(row["example_id"]), "input": row["input"], "answer": row["answer"],
                "domain": row["domain"]}
        got = store.one(teacher.conn, "SELECT b.remote_id FROM teacher_batch_lines l JOIN teacher_batches b ON"
                                      " b.id = l.batch_id WHERE l.key = ? AND l.status = 'ok' LIMIT 1",
                        (teacher._key(teacher._rationale_call(item)),))
        return got["remote_id"] if got else None
    return of


# ---------------------------------------------------------------- submit, poll, collect


def _insert(conn, bid, teacher, calls, idx) -> dict:
    now = store.now()
    with store.transaction(conn):
        conn.execute("INSERT INTO teacher_batches(id, run_id, purpose, model, status, n_lines, created_at, updated_at)"
                     " VALUES (?,?,?,?,'preparing',?,?,?)", (bid, teacher.run_id, calls[idx[0]].purpose,
                                                            teacher.backend.model, len(idx), now, now))
        conn.executemany("INSERT INTO teacher_batch_lines(batch_id, custom_id, key) VALUES (?,?,?)",
                         [(bid, custom_id(calls[i].purpose, calls[i].context, calls[i].key), calls[i].key)
                          for i in idx])
    return store.one(conn, "SELECT * FROM teacher_batches WHERE id = ?", (bid,))


def _find_remote(client, bid: str):
    """A batch already created for this row (the worker died before storing its id), or None."""
    for b in client.batches.list(limit=100):
        if (b.metadata or {}).get("baldistill_batch") == bid:
            return b
    return None


def _submit(teacher, row: dict, calls, idx) -> dict:
    conn, client, bid = teacher.conn, teacher.backend._client, row["id"]
    if not row["input_file_id"]:
        data = request_file(teacher.backend, [calls[i] for i in idx])
        f = client.files.create(file=(f"{bid}.jsonl", data), purpose="batch")
        _update(conn, bid, input_file_id=f.id)
        row["input_file_id"] = f.id
    b = _find_remote(client, bid)
    if b is None:
        b = client.batches.create(input_file_id=row["input_file_id"], endpoint=ENDPOINT,
                                  completion_window=teacher.cfg.batch_window, metadata={"baldistill_batch": bid})
        row["submissions"] += 1
    ids = dict(remote_id=b.id, status=b.status, output_file_id=b.output_file_id, error_file_id=b.error_file_id)
    _update(conn, bid, submissions=row["submissions"], **ids)
    row.update(ids)  # a fast endpoint may answer "completed" at once: keep its file ids too
    return row


def _poll(teacher, row: dict) -> dict:
    """Poll until the batch ends; a cancel seen meanwhile cancels it remotely and re-raises."""
    o = teacher.backend._openai
    conn, client, cfg = teacher.conn, teacher.backend._client, teacher.cfg
    errors = 0
    while True:
        try:
            b = client.batches.retrieve(row["remote_id"])
            errors = 0
        except (o.APIConnectionError, o.APITimeoutError, o.InternalServerError, o.RateLimitError) as e:
            errors += 1
            if errors > cfg.max_retries:
                raise TeacherCallError(f"polling batch {row['remote_id']} failed {errors} times ({type(e).__name__}); "
                                       f"its id is stored: Resume polls it again, nothing is resubmitted") from None
            b = None
        if b is not None:
            rc = b.request_counts
            row.update(status=b.status, output_file_id=b.output_file_id, error_file_id=b.error_file_id)
            _update(conn, row["id"], status=b.status, output_file_id=b.output_file_id, error_file_id=b.error_file_id,
                    n_completed=rc.completed if rc else 0, n_failed=rc.failed if rc else 0)
            if b.status in TERMINAL:
                return row
        until = time.monotonic() + cfg.batch_poll_s
        while True:
            try:
                if teacher.check_cancel is not None:
                    teacher.check_cancel()
            except BaseException:
                client.batches.cancel(row["remote_id"])
                _update(conn, row["id"], status="cancelling")
                raise
            left = until - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.5))


def _read_file(client, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    text = client.files.content(file_id).text
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def _collect(teacher, row: dict, calls, idx) -> dict[int, Reply]:
    client = teacher.backend._client
    by_cid = {custom_id(calls[i].purpose, calls[i].context, calls[i].key): i for i in idx}
    got: dict[int, Reply] = {}
    errors: dict[str, str] = {}
    for r in _read_file(client, row["output_file_id"]) + _read_file(client, row["error_file_id"]):
        cid = r.get("custom_id")
        if cid not in by_cid:
            continue
        resp = r.get("response") or {}
        body = resp.get("body") or {}
        if r.get("error") or resp.get("status_code") != 200 or not body.get("choices"):
            err = r.get("error") or body.get("error") or {}
            errors[cid] = f"batch line failed (HTTP {resp.get('status_code')}): {str(err.get('message', err))[:160]}"
            continue
        got[by_cid[cid]] = reply_of(body, calls[by_cid[cid]].messages)
    ok = {c for c, i in by_cid.items() if i in got}
    not_run = f"not run: the batch ended {row['status']}"
    with store.transaction(teacher.conn):
        teacher.conn.executemany(
            "UPDATE teacher_batch_lines SET status = ?, error = ? WHERE batch_id = ? AND custom_id = ?",
            [("ok" if c in ok else "failed", None if c in ok else errors.get(c, not_run), row["id"], c)
             for c in by_cid])
        _update(teacher.conn, row["id"], n_completed=len(ok), n_failed=len(by_cid) - len(ok))
    return got


def run_batch(teacher, calls, idx: list[int]) -> tuple[dict[int, Reply], str | None]:
    """Send ``calls[i]`` for ``i`` in ``idx`` as one batch (or resume the stored one); returns the
    replies that came back by index, and the endpoint's batch id. Missing indexes: retry them singly."""
    o = teacher.backend._openai
    try:
        return _run_batch(teacher, calls, idx)
    except (o.AuthenticationError, o.PermissionDeniedError) as e:
        raise TeacherConfigError(f"the endpoint refused the API key for its batch API (HTTP {e.status_code}); check "
                                 f"{teacher.cfg.api_key_env}") from None
    except o.NotFoundError as e:
        raise TeacherConfigError(
            f"the endpoint at {teacher.cfg.base_url or 'api.openai.com'} has no files/batches API or lost the batch "
            f"(HTTP 404: {_safe(e)}); set teacher.mode: online, or write the requests with `baldistill teacher "
            f"batch-file`, run them offline and import the results") from None
    except o.APIError as e:
        raise TeacherCallError(f"batch API error ({type(e).__name__}: {_safe(e)}); the batch id is stored, "
                               f"Resume continues it without resubmitting") from None


def _run_batch(teacher, calls, idx: list[int]) -> tuple[dict[int, Reply], str | None]:
    conn = teacher.conn
    fp = _fingerprint(teacher.run_id, teacher.backend.model, [calls[i].key for i in idx])
    row = _latest(conn, fp)
    if row is not None and row["status"] in TERMINAL and _consumed(conn, row["id"]):
        if row["status"] != "cancelled":
            return {}, row["remote_id"]  # its failed lines: single calls
        row = None  # resumed after a cancel: a new batch for what is left
    if row is None:
        prev = _latest(conn, fp)
        gen = int(prev["id"].rsplit("-", 1)[1]) + 1 if prev else 1
        _check_cost(teacher, [calls[i] for i in idx])
        row = _insert(conn, f"{fp}-{gen}", teacher, calls, idx)
    if not row["remote_id"]:
        row = _submit(teacher, row, calls, idx)
    ours_cancelled = row["status"] == "cancelling"  # a cancel we sent before the worker stopped
    if row["status"] not in TERMINAL:
        row = _poll(teacher, row)
    got = _collect(teacher, row, calls, idx)
    rest = [i for i in idx if i not in got]
    if ours_cancelled and row["status"] == "cancelled" and rest:  # the run was resumed after a cancel
        more, _ = _run_batch(teacher, calls, rest)
        got.update(more)
    return got, row["remote_id"]


def _check_cost(teacher, calls) -> None:
    """Refuse a batch whose estimated cost (at the batch price) would pass the cost cap."""
    if teacher.budget.cost_cap_usd is None or getattr(teacher.backend, "free", False):
        return
    avg = float(ledger.mean_tokens_out(teacher.conn, calls[0].purpose) or teacher.cfg.max_tokens)
    est = sum(teacher._cost(ledger.messages_tokens(c.messages), int(avg)) for c in calls)
    teacher.budget.check(teacher.conn, teacher.run_id, est_cost=est * teacher.cfg.batch_price_factor)


def execute_batch(teacher, calls, misses, first_of_key, outcomes, outcome_cls) -> tuple[list[int], int]:
    """``Teacher._execute``'s batch step: send the misses as one batch, record what came back in the
    cache and ledger (priced at the batch rate), return (indexes still to call singly, calls settled)."""
    t0 = time.perf_counter()
    got, batch_id = run_batch(teacher, calls, misses)
    latency = (time.perf_counter() - t0) / max(1, len(got))
    recs, done = [], 0
    for i, reply in got.items():
        new, n = teacher._settle(calls, i, outcome_cls(reply=reply, batch_id=batch_id), latency, first_of_key,
                                 outcomes)
        recs += new
        done += n
    ledger.write_calls(teacher.conn, teacher.run_id, recs)
    return [i for i in misses if i not in got], done


# ---------------------------------------------------------------- result files (read by teacher.imports)


def _where(name: str, r: dict, i: int) -> str:
    return f"{name}: line {r['__line__']}" if "__line__" in r else f"{name}: row {i + 1}"


def _s(v) -> str:
    return "" if v is None else str(v).strip()


def _batch_row(r: dict) -> tuple[str, str | None, str | None, str | None]:
    """(custom_id, reply text, model, error) of one line of an OpenAI / vLLM batch result file."""
    cid = _s(r.get("custom_id"))
    err = r.get("error")
    resp = r.get("response") or {}
    if isinstance(resp, str):
        resp = json.loads(resp)
    status = resp.get("status_code", 200)
    body = resp.get("body") or {}
    if err or status != 200 or not body.get("choices"):
        why = (err or {}).get("message") if isinstance(err, dict) else err
        why = why or (body.get("error") or {}).get("message") or f"HTTP {status}"
        return cid, None, body.get("model"), str(why)[:160]
    return cid, (body["choices"][0].get("message") or {}).get("content") or "", body.get("model"), None


def is_result_file(raw: list[dict]) -> bool:
    return bool(raw) and "custom_id" in raw[0] and "response" in raw[0]


def rationale_rows(raw: list[dict], name: str, problems: list[str]) -> list[dict]:
    out = []
    for i, r in enumerate(raw):
        cid, text, model, err = _batch_row(r)
        if err:
            problems.append(f"{_where(name, r, i)}: the batch call {cid!r} failed ({err}); re-run it or delete the line")
            continue
        if cid.startswith("rationale:"):
            cid = cid[len("rationale:"):].rsplit(":", 1)[0]
        elif cid.split(":", 1)[0] in ("synthesis", "verification"):
            continue  # another purpose's line of the same batch
        out.append({"id": cid, "rationale": text, "model": model, "__line__": r.get("__line__", i + 1)})
    return out


def synthetic_rows(raw: list[dict], name: str, problems: list[str]) -> list[dict]:
    out = []
    for i, r in enumerate(raw):
        cid, text, model, err = _batch_row(r)
        if not cid.startswith("synthesis:"):
            continue
        if err:
            problems.append(f"{_where(name, r, i)}: the batch call {cid!r} failed ({err}); re-run it or delete the line")
            continue
        domain = cid[len("synthesis:"):].rsplit(":", 1)[0]
        for it in parse_items(text or ""):
            out.append({**it, "domain": domain, "model": model, "__line__": r.get("__line__", i + 1)})
    return out
