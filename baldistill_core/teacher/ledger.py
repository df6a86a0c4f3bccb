"""Teacher cache, call ledger and budget (tables ``teacher_cache`` and ``ledger`` in store.py).

* Cache: one row per distinct request, keyed by sha256 of backend + model + messages + params.
  A re-run, a resumed run or a second run with the same settings is served from here at no cost.
* Ledger: one row per logical call a run asked for, cached ones too (cost 0), with purpose
  (rationale / synthesis / verification), tokens, latency, estimated cost and ``examples`` — the
  budget unit B of the method (examples annotated or synthesized). A call whose key this run
  already counted counts 0 examples, so a resumed run never spends its budget twice.
* Budget: ``Budget(max_examples, cost_cap_usd)``; ``check`` raises ``BudgetExceeded`` *before* a
  call would pass either limit, so the run stops cleanly and can resume.

All writes go through ``store.transaction``; callers write from one thread per connection.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from baldistill_core import store

PURPOSES = ("rationale", "synthesis", "verification", "other")


class BudgetExceeded(BalDistillError, RuntimeError):
    """The example budget or the cost cap would be passed; nothing was spent for the refused call."""


def cache_key(backend: str, model: str, messages: list[dict], params: dict) -> str:
    """sha256 over a canonical JSON of everything that decides the reply.

    >>> cache_key("openai", "m", [{"role": "user", "content": "hi"}], {"t": 0}) == \\
    ...     cache_key("openai", "m", [{"content": "hi", "role": "user"}], {"t": 0})
    True
    """
    blob = json.dumps(
        {"backend": backend, "model": model, "messages": messages, "params": params},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters a token) for backends that report none."""
    return max(1, (len(text or "") + 3) // 4)


def messages_tokens(messages: list[dict]) -> int:
    return sum(estimate_tokens(m.get("content") or "") + 4 for m in messages)


def call_cost(tokens_in: int, tokens_out: int, price_in_per_mtok: float, price_out_per_mtok: float) -> float:
    """USD for one call from the (user-editable) per-million-token prices.

    >>> call_cost(1_000_000, 500_000, 0.15, 0.60)
    0.45
    """
    return round(tokens_in * price_in_per_mtok / 1e6 + tokens_out * price_out_per_mtok / 1e6, 10)


# ---------------------------------------------------------------- cache


def cache_get_many(conn: sqlite3.Connection, keys: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    uniq = list(dict.fromkeys(keys))
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        for r in conn.execute(
            f"SELECT key, response, tokens_in, tokens_out FROM teacher_cache WHERE key IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            out[r["key"]] = {"response": json.loads(r["response"]), "tokens_in": r["tokens_in"],
                             "tokens_out": r["tokens_out"]}
    return out


def cache_get(conn: sqlite3.Connection, key: str) -> dict | None:
    return cache_get_many(conn, [key]).get(key)


def _cache_put(conn, key, backend, model, request, response, tokens_in, tokens_out) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO teacher_cache(key, backend, model, request, response, tokens_in, tokens_out, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (key, backend, model, store.dumps(request), store.dumps(response), tokens_in, tokens_out, store.now()),
    )


# ---------------------------------------------------------------- ledger


@dataclass
class CallRecord:
    """One logical call, ready to be written (cache entry optional)."""

    key: str
    purpose: str
    cached: bool
    ok: bool
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    priced: bool = True     # False: paid at a price nobody knows (cost_usd 0 is then no figure)
    examples: int = 0
    error: str | None = None
    # to cache (only successful, non-cached replies)
    backend: str | None = None
    model: str | None = None
    request: dict | None = None
    response: dict | None = None


def _already_counted(conn, run_id: str | None, key: str) -> bool:
    if run_id is None:
        return False
    r = conn.execute(
        "SELECT 1 FROM ledger WHERE run_id = ? AND key = ? AND ok = 1 AND examples > 0 LIMIT 1", (run_id, key)
    ).fetchone()
    return r is not None


def write_calls(conn: sqlite3.Connection, run_id: str | None, records: list[CallRecord]) -> list[CallRecord]:
    """Write cache entries and ledger rows of ``records`` in one transaction.

    A record whose key this run already counted gets ``examples = 0`` (resume never double counts).
    """
    if not records:
        return records
    with store.transaction(conn):
        for rec in records:
            if rec.purpose not in PURPOSES:
                raise ValueError(f"unknown ledger purpose {rec.purpose!r}; use one of {PURPOSES}")
            if rec.response is not None and not rec.cached:
                _cache_put(conn, rec.key, rec.backend, rec.model, rec.request, rec.response,
                           rec.tokens_in, rec.tokens_out)
            if rec.examples and _already_counted(conn, run_id, rec.key):
                rec.examples = 0
            conn.execute(
                "INSERT INTO ledger(run_id, key, purpose, cached, ok, tokens_in, tokens_out, latency_s, cost_usd,"
                " priced, examples, error, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, rec.key, rec.purpose, int(rec.cached), int(rec.ok), rec.tokens_in, rec.tokens_out,
                 rec.latency_s, rec.cost_usd, int(rec.priced), rec.examples, rec.error, store.now()),
            )
    return records


def _run_filter(run_id: str | None) -> tuple[str, tuple]:
    return ("run_id IS ?", (run_id,))


def spent_examples(conn: sqlite3.Connection, run_id: str | None) -> int:
    """Budget units spent by a run (``run_id=None``: calls made outside any run)."""
    where, params = _run_filter(run_id)
    r = conn.execute(f"SELECT COALESCE(SUM(examples), 0) FROM ledger WHERE {where}", params).fetchone()
    return int(r[0])


def spent_cost(conn: sqlite3.Connection, run_id: str | None) -> float:
    where, params = _run_filter(run_id)
    r = conn.execute(f"SELECT COALESCE(SUM(cost_usd), 0) FROM ledger WHERE {where}", params).fetchone()
    return float(r[0])


def mean_tokens_out(conn: sqlite3.Connection, purpose: str) -> float | None:
    """Mean reply length of past paid calls of a purpose (for cost estimates), or None."""
    r = conn.execute("SELECT AVG(tokens_out) FROM (SELECT tokens_out FROM ledger WHERE purpose = ? AND ok = 1"
                     " AND cached = 0 ORDER BY seq DESC LIMIT 200)", (purpose,)).fetchone()
    return float(r[0]) if r and r[0] is not None else None


def counted_keys(conn: sqlite3.Connection, run_id: str | None, keys: list[str]) -> set[str]:
    """Keys among ``keys`` that this run already paid budget for."""
    if run_id is None or not keys:
        return set()
    out: set[str] = set()
    uniq = list(dict.fromkeys(keys))
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        out.update(r[0] for r in conn.execute(
            f"SELECT DISTINCT key FROM ledger WHERE run_id = ? AND ok = 1 AND examples > 0"
            f" AND key IN ({','.join('?' * len(chunk))})", [run_id, *chunk]))
    return out


def summary(conn: sqlite3.Connection, run_id: str | None = None) -> dict:
    """Totals for a run (or, with ``run_id=None``, for the whole workspace), overall and by purpose.

    ``unpriced_calls`` counts paid calls at an unknown price: ``cost_usd`` leaves them out, so a
    report shows it as a lower bound (:func:`cost_text`)."""
    where, params = ("1=1", ()) if run_id is None else ("run_id = ?", (run_id,))
    cols = ("COUNT(*) AS calls, COALESCE(SUM(cached),0) AS cached_calls, COALESCE(SUM(1-ok),0) AS failed_calls,"
            " COALESCE(SUM(tokens_in),0) AS tokens_in, COALESCE(SUM(tokens_out),0) AS tokens_out,"
            " COALESCE(SUM(cost_usd),0) AS cost_usd, COALESCE(SUM(examples),0) AS examples,"
            " COALESCE(SUM(latency_s),0) AS latency_s, COALESCE(SUM(1-priced),0) AS unpriced_calls")
    total = store.one(conn, f"SELECT {cols} FROM ledger WHERE {where}", params) or {}
    by = {r.pop("purpose"): r for r in store.rows(
        conn, f"SELECT purpose, {cols} FROM ledger WHERE {where} GROUP BY purpose", params)}
    total["cost_usd"] = round(float(total.get("cost_usd") or 0), 8)
    total["by_purpose"] = by
    return total


def cost_text(spend: dict) -> str:
    """``$0.0123``, or ``$0.0123 + 4 calls at an unknown price`` when some calls have no price.

    >>> cost_text({"cost_usd": 0.5, "unpriced_calls": 0})
    '$0.5000'
    >>> cost_text({"cost_usd": 0.0, "unpriced_calls": 3})
    '$0.0000 + 3 calls at an unknown price'
    """
    text = f"${float(spend.get('cost_usd') or 0):.4f}"
    n = int(spend.get("unpriced_calls") or 0)
    return text + (f" + {n} call{'s' if n != 1 else ''} at an unknown price" if n else "")


# ---------------------------------------------------------------- budget


@dataclass
class Budget:
    """Limits for one run: examples (B) and a USD cost cap; ``None`` = unlimited."""

    max_examples: int | None = None
    cost_cap_usd: float | None = None

    def check(self, conn: sqlite3.Connection, run_id: str | None, *, need_examples: int = 0,
              est_cost: float = 0.0) -> None:
        if self.max_examples is not None and need_examples > 0:
            spent = spent_examples(conn, run_id)
            if spent + need_examples > self.max_examples:
                raise BudgetExceeded(
                    f"teacher budget reached: {spent} of {self.max_examples} examples spent, {need_examples} more "
                    f"needed; raise the budget to continue (the run can resume; cached calls cost nothing)"
                )
        if self.cost_cap_usd is not None:
            cost = spent_cost(conn, run_id)
            if cost + est_cost > self.cost_cap_usd + 1e-12:
                raise BudgetExceeded(
                    f"teacher cost cap reached: ${cost:.4f} spent, next calls estimated ${est_cost:.4f}, cap "
                    f"${self.cost_cap_usd:.4f}; raise cost_cap_usd to continue (the run can resume)"
                )
