"""Teacher backends: one ``complete(messages, ...)`` call each, registered by name.

* ``openai``  — the ``openai`` SDK against any OpenAI-compatible endpoint. The SDK's own retries
  are off; ours retry 429/5xx/timeouts/connection errors with exponential backoff + jitter and
  honour ``Retry-After``. Calls run in a thread pool (the sync client is thread-safe): against
  the local test server (100 ms a reply, 256 calls, 32 in flight) a thread pool took 1.6 s and
  ``AsyncOpenAI`` + a semaphore 1.9 s on this 2-core machine; ``bench/teacher.py`` tracks it. The API key comes from the caller or ``os.environ[cfg.api_key_env]`` and
  is kept on the client object only: never logged, stored or put in an error message.
* ``recorded`` — replays the bundled real teacher outputs of a dataset (offline, free).
* ``local``   — a local transformers causal LM (default the bundled SmolLM2); low quality.

A backend raises ``TeacherCallError`` for a per-call failure (the item fails, the run goes on),
``NoRecording`` when the recorded teacher has nothing for a request, and ``TeacherConfigError``
when no call can succeed (bad key, unknown model) — the last one stops the whole batch.
"""

from __future__ import annotations

from baldistill_core.errors import BalDistillError

import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from baldistill_core.config import TeacherConfig
from baldistill_core.teacher.ledger import estimate_tokens, messages_tokens


class TeacherError(BalDistillError, RuntimeError):
    pass


class TeacherCallError(TeacherError):
    """One call failed (after retries); the message is safe to show and store."""


class TeacherConfigError(TeacherError):
    """No call can succeed with these settings (authentication, unknown model, missing package)."""


class NoRecording(TeacherError):
    """The recorded teacher has no recording for this request."""


@dataclass
class Reply:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    refusal: str | None = None
    finish_reason: str | None = None
    attempts: int = 1


BACKENDS: dict[str, Callable[..., "object"]] = {}


def register(name: str):
    def deco(cls):
        BACKENDS[name] = cls
        cls.name = name
        return cls
    return deco


def _norm_text(s: str) -> str:
    from baldistill_core.teacher.parsing import norm_input

    return norm_input(s)


# ---------------------------------------------------------------- openai


@register("openai")
class OpenAIBackend:
    low_quality = False
    free = False
    uses_prompts = True

    def __init__(self, cfg: TeacherConfig, *, api_key: str | None = None, backoff_base_s: float | None = None,
                 **_: object):
        import openai

        key = api_key or os.environ.get(cfg.api_key_env)
        if not key:
            if cfg.base_url:  # local servers (vLLM, Ollama, llama.cpp) usually accept any key
                key = "not-needed"
            else:
                raise TeacherConfigError(
                    f"no API key: set the environment variable {cfg.api_key_env} or type the key in the Training "
                    f"form's 'API key' field (kept for the session only), or set base_url for a local server"
                )
        self.cfg = cfg
        self.model = cfg.model
        self.max_workers = cfg.concurrency
        self.backoff_base_s = cfg.retry_backoff_s if backoff_base_s is None else backoff_base_s
        self._openai = openai
        self._client = openai.OpenAI(api_key=key, base_url=cfg.base_url or None, timeout=cfg.timeout_s,
                                     max_retries=0)
        self._json_schema_ok = True

    def _delay(self, attempt: int, err) -> float:
        resp = getattr(err, "response", None)
        ra = None
        if resp is not None:
            ra = resp.headers.get("retry-after")
        if ra is not None:
            try:
                return min(max(float(ra), 0.0), 60.0)
            except ValueError:
                pass
        return min(30.0, self.backoff_base_s * (2 ** attempt)) * (0.5 + random.random())

    def complete(self, messages: list[dict], *, params: dict, purpose: str, context: dict) -> Reply:
        o = self._openai
        kwargs = dict(model=self.model, messages=messages, temperature=params.get("temperature", 0.0),
                      max_tokens=params.get("max_tokens", self.cfg.max_tokens))
        if params.get("json_schema") is not None and self._json_schema_ok:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "items", "schema": params["json_schema"]}}
        attempt = 0
        while True:
            try:
                resp = self._client.chat.completions.create(**kwargs)
                break
            except o.BadRequestError as e:
                if "response_format" in kwargs and "response_format" in str(e):
                    self._json_schema_ok = False  # the server does not do structured output: parse text
                    kwargs.pop("response_format")
                    continue
                raise TeacherCallError(f"request rejected (HTTP 400): {_safe(e)}") from None
            except (o.AuthenticationError, o.PermissionDeniedError) as e:
                raise TeacherConfigError(
                    f"the endpoint refused the API key (HTTP {e.status_code}); check {self.cfg.api_key_env} "
                    f"or the key typed in the form"
                ) from None
            except o.NotFoundError:
                raise TeacherConfigError(
                    f"model {self.model!r} or endpoint not found at {self.cfg.base_url or 'api.openai.com'} "
                    f"(HTTP 404); check the model name and base URL"
                ) from None
            except (o.RateLimitError, o.InternalServerError, o.APITimeoutError, o.APIConnectionError,
                    o.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                retryable = status is None or status == 429 or status >= 500 or status == 408
                if not retryable or attempt >= self.cfg.max_retries:
                    what = f"HTTP {status}" if status else type(e).__name__.replace("API", "").lower()
                    raise TeacherCallError(
                        f"{what} after {attempt + 1} attempt(s): {_safe(e)}"
                    ) from None
                time.sleep(self._delay(attempt, e))
                attempt += 1
        if not resp.choices:
            raise TeacherCallError("the endpoint returned no choices; check that base_url serves /v1/chat/completions")
        ch = resp.choices[0]
        msg = ch.message
        text = (msg.content or "") if msg is not None else ""
        refusal = getattr(msg, "refusal", None) if msg is not None else None
        usage = resp.usage
        tin = usage.prompt_tokens if usage and usage.prompt_tokens is not None else messages_tokens(messages)
        tout = usage.completion_tokens if usage and usage.completion_tokens is not None else estimate_tokens(text)
        return Reply(text=text, tokens_in=tin, tokens_out=tout, refusal=refusal, finish_reason=ch.finish_reason,
                     attempts=attempt + 1)


def _safe(e: Exception, limit: int = 200) -> str:
    msg = str(getattr(e, "message", None) or e)
    msg = re.sub(r"(sk-|Bearer\s+)[A-Za-z0-9_\-]{6,}", r"\1***", msg)
    return msg[:limit]


# ---------------------------------------------------------------- recorded


def _read_jsonl(path: str | Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def recorded_synthetic_rows(path: str | Path) -> list[dict]:
    """Rows of a recorded synthetic file that count as distinct examples (``-syn-raw-`` rows are
    alternative recordings of the same problems and are skipped)."""
    return [r for r in _read_jsonl(path) if "-syn-raw-" not in str(r.get("id", ""))]


@register("recorded")
class RecordedBackend:
    """Replays ``recorded_rationales`` (by train id) and ``recorded_synthetic`` (file order per domain,
    never the same row twice for one backend instance, skipping inputs the caller says exist)."""

    low_quality = False
    free = True
    uses_prompts = False
    max_workers = 1

    def __init__(self, cfg: TeacherConfig, *, spec=None, **_: object):
        if spec is None:
            raise TeacherConfigError("the recorded teacher needs the dataset spec")
        self.cfg = cfg
        self.model = f"recorded:{spec.name}"
        self.spec = spec
        self._rationales: dict[str, str] | None = None
        self._synthetic: dict[str, list[dict]] | None = None
        self._served: set[str] = set()
        self._lock = threading.Lock()

    @property
    def rationales(self) -> dict[str, str]:
        if self._rationales is None:
            p = self.spec.recorded_rationales
            self._rationales = ({r["id"]: r["rationale"] for r in _read_jsonl(p)} if p and Path(p).exists() else {})
        return self._rationales

    @property
    def synthetic(self) -> dict[str, list[dict]]:
        if self._synthetic is None:
            p = self.spec.recorded_synthetic
            by: dict[str, list[dict]] = {}
            if p and Path(p).exists():
                for r in recorded_synthetic_rows(p):
                    by.setdefault(r["domain"], []).append(r)
            self._synthetic = by
        return self._synthetic

    def has_rationale(self, item_id: str) -> bool:
        return item_id in self.rationales

    def note_served(self, inputs: list[str]) -> None:
        with self._lock:
            self._served.update(_norm_text(t) for t in inputs)

    def complete(self, messages: list[dict], *, params: dict, purpose: str, context: dict) -> Reply:
        tin = messages_tokens(messages)
        if purpose == "rationale":
            text = self.rationales.get(context.get("id"))
            if text is None:
                raise NoRecording(f"no recording: the recorded teacher has no rationale for {context.get('id')!r}; "
                                  f"use the openai or local teacher for this dataset")
            return Reply(text=text, tokens_in=tin, tokens_out=estimate_tokens(text))
        if purpose == "verification":
            # No blind solves were recorded: the recorded rationale's own final answer is checked instead.
            text = context.get("rationale")
            if not text:
                raise NoRecording("no recording: no recorded rationale to verify against; use the openai or local teacher")
            return Reply(text=text, tokens_in=tin, tokens_out=estimate_tokens(text))
        if purpose == "synthesis":
            domain, n = context["domain"], int(context["n"])
            avoid = {_norm_text(t) for t in context.get("avoid_texts", ())}
            rows = self.synthetic.get(domain, [])
            with self._lock:
                picked = []
                for r in rows:
                    key = _norm_text(r["input"])
                    if key in self._served or key in avoid:
                        continue
                    picked.append(r)
                    self._served.add(key)
                    if len(picked) >= n:
                        break
            if not picked:
                have = len(rows)
                raise NoRecording(
                    f"no recording: the recorded teacher has {'no' if not have else f'only {have}'} synthetic "
                    f"examples for domain {domain!r}{' and all are used' if have else ''}; use the openai or local "
                    f"teacher to synthesize more, or let the run duplicate existing examples"
                )
            text = json.dumps({"items": [{"input": r["input"], "answer": r["answer"], "rationale": r["rationale"],
                                          "recording_id": r.get("id")} for r in picked]}, ensure_ascii=False)
            return Reply(text=text, tokens_in=tin, tokens_out=estimate_tokens(text))
        raise NoRecording(f"no recording: the recorded teacher cannot answer {purpose!r} calls; use the openai or "
                          f"local teacher")


# ---------------------------------------------------------------- local


@register("local")
class LocalBackend:
    """A local transformers causal LM; greedy (or sampled) generation, one call at a time."""

    low_quality = True
    free = True
    uses_prompts = True
    max_workers = 1

    def __init__(self, cfg: TeacherConfig, **_: object):
        from baldistill_core.student import model as student  # lazy: pulls in torch/transformers

        name = cfg.model
        if name == TeacherConfig.model_fields["model"].default:  # the OpenAI default means "pick the local default"
            name = student.SMOLLM2
        self.cfg = cfg
        self.model = name
        self._student = student
        self._path = None
        self._loaded = None
        self._lock = threading.Lock()

    def _load(self):
        if self._loaded is None:
            self._path = self._student.resolve_model(self.model)
            self._loaded = self._student.load_model(self._path)
        return self._loaded

    def complete(self, messages: list[dict], *, params: dict, purpose: str, context: dict) -> Reply:
        import torch

        with self._lock:
            model, tok = self._load()
            try:
                prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # a base model without a chat template
                prompt = "\n\n".join(m["content"] for m in messages) + "\n\n"
            ids = tok(prompt, return_tensors="pt")
            temp = float(params.get("temperature", 0.0))
            max_new = min(int(params.get("max_tokens", self.cfg.max_tokens)), 1024)
            gen_kwargs = dict(max_new_tokens=max_new, pad_token_id=tok.pad_token_id)
            if temp > 0:
                torch.manual_seed(int(params.get("seed", 0)))
                gen_kwargs.update(do_sample=True, temperature=temp, top_p=0.95)
            else:
                gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                out = model.generate(**ids, **gen_kwargs)
            new = out[0, ids["input_ids"].shape[1]:]
            text = tok.decode(new, skip_special_tokens=True)
        return Reply(text=text, tokens_in=int(ids["input_ids"].shape[1]), tokens_out=int(new.shape[0]))
