"""Parsing and checking the teacher's synthesis replies (pure functions).

A reply should be ``{"items": [{"input", "answer", "rationale"}]}`` (structured output), but
servers without structured output wrap JSON in prose or code fences, or return a bare list; the
fallback parser digs the JSON out. Garbage gives ``[]``, never an exception.
"""

from __future__ import annotations

import json
import re
from typing import Callable

from baldistill_core.task.answers import extract_choice, normalize_answer

_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i can(no|')t|i cannot|as an ai\b|i won'?t|sorry,)", re.I)

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _items_of(obj) -> list[dict]:
    if isinstance(obj, list):
        return [x for x in obj if isinstance(x, dict)]
    if isinstance(obj, dict):
        for k in ("items", "examples", "data", "results"):
            if isinstance(obj.get(k), list):
                return [x for x in obj[k] if isinstance(x, dict)]
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            return [x for x in lists[0] if isinstance(x, dict)]
        if "input" in obj:
            return [obj]
    return []


def parse_items(text: str) -> list[dict]:
    """Items from a synthesis reply: plain JSON, fenced JSON, or the outermost {...}/[...] in prose.

    >>> parse_items('Sure! ```json\\n{"items": [{"input": "q", "answer": "1", "rationale": "r"}]}\\n```')
    [{'input': 'q', 'answer': '1', 'rationale': 'r'}]
    >>> parse_items("I'm sorry, I can't do that.")
    []
    """
    if not isinstance(text, str) or not text.strip():
        return []
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_ch, close_ch in (("{", "}"), ("[", "]")):
        a, b = text.find(open_ch), text.rfind(close_ch)
        if 0 <= a < b:
            candidates.append(text[a:b + 1])
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        items = _items_of(obj)
        if items:
            return items
    # Last resort: one JSON object per line (JSON Lines).
    out = []
    for line in text.splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("{"):
            try:
                out += _items_of(json.loads(line))
            except (json.JSONDecodeError, ValueError, RecursionError):
                pass
    return out


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return v.strip() if isinstance(v, str) else ""


def norm_input(s: str) -> str:
    """Key for exact duplicates: same words, ignoring case, spacing and punctuation.

    >>> norm_input("Tin  prices ROSE.") == norm_input("tin prices rose")
    True
    """
    words = re.findall(r"\w+", (s or "").lower())
    return " ".join(words) if words else " ".join((s or "").split())


def validate_items(raw: list[dict], domain: str, task_type: str, labels: list[str] | None,
                   seen: set[str]) -> tuple[list[dict], list[str]]:
    """Well-formed, new items (``seen`` holds normalised inputs already known; it is updated).

    Returns ``(items, rejection reasons)``.

    >>> validate_items([{"input": "a b c", "answer": "x", "rationale": "r"}, {"input": "a  B c", "answer": "x",
    ...     "rationale": "r"}], "d", "qa", None, set())[1]
    ['exact duplicate']
    """
    canon = {normalize_answer(lab, "classification"): lab for lab in labels or []}
    good, rejected = [], []
    for r in raw:
        inp, ans, rat = _text(r.get("input")), _text(r.get("answer")), _text(r.get("rationale"))
        if len(inp) < 3:
            rejected.append("missing or too short input")
            continue
        if not ans:
            rejected.append("missing answer")
            continue
        if task_type == "classification" and labels:
            lab = canon.get(normalize_answer(ans, "classification"))
            if lab is None:
                rejected.append(f"answer {ans[:40]!r} is not in the label set")
                continue
            ans = lab
        elif task_type == "multiple_choice":
            letter = extract_choice(ans)
            if letter is None:
                rejected.append(f"answer {ans[:40]!r} is not a choice letter")
                continue
            ans = letter
        key = norm_input(inp)
        if key in seen:
            rejected.append("exact duplicate")
            continue
        seen.add(key)
        item = {"domain": domain, "input": inp, "answer": ans, "rationale": rat, "teacher_answer": None,
                "verified": None, "verify_answer": None, "duplicate_of": None}
        if r.get("recording_id"):
            item["recording_id"] = str(r["recording_id"])
        good.append(item)
    return good, rejected


def refusal_check(r) -> str | None:
    """Why a teacher reply (``backends.Reply``) is unusable as a rationale (refusal, empty), else None."""
    if r.refusal:
        return f"teacher refused: {r.refusal[:160]}"
    if not r.text.strip():
        return "teacher returned an empty reply"
    if _REFUSAL.match(r.text) and len(r.text) < 400:
        return f"teacher refused: {r.text.strip()[:160]}"
    return None


def synthesis_check(r) -> str | None:
    """Why a synthesis reply is unusable (refusal, no JSON items), else None."""
    problem = refusal_check(r)
    if problem:
        return problem
    if not parse_items(r.text):
        return f"malformed synthesis reply (no JSON items found): {r.text.strip()[:120]!r}"
    return None


def count_items(size: int) -> Callable:
    """Budget units a synthesis reply used: its parsed items, at most ``size``."""
    return lambda r: min(size, len(parse_items(r.text)))
