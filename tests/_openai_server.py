"""A real OpenAI-compatible HTTP server on 127.0.0.1 for teacher tests and bench/teacher.py.

``ThreadingHTTPServer`` in a daemon thread answering ``POST /v1/chat/completions`` with
protocol-exact JSON (id, object, created, model, choices[].message, finish_reason, usage). Replies
are canned but follow what the request asks, steered by markers inside the example text:

* ``[[429]]``     first attempt of that request gets HTTP 429 (``Retry-After: 0``), then success
* ``[[500]]``     always HTTP 500; ``[[401]]`` always HTTP 401 (bad key)
* ``[[slow:S]]``  sleep S seconds before answering
* ``[[refuse]]``  a refusal ("I'm sorry ...", with ``message.refusal`` set)
* ``[[garbage]]`` a reply that is not JSON (for synthesis) and has no answer
* ``[[fence]]``   synthesis JSON wrapped in prose and a ```json fence
* ``[[solve:X]]`` the blind (verification) answer is X
* ``[[batchfail]]`` that line of a batch fails (HTTP 500 in the error file); a single call succeeds

Rationale prompts are answered with the gold answer found in the prompt; synthesis prompts with
the number of items asked for. ``latency_s`` adds a delay to every request (bench).

Batch API (``/v1/files``, ``/v1/batches``, in ``_openai_batches``): an uploaded JSONL request file is run line by line in a
thread with the same replies (``[[500]]`` lines land in the error file). ``batch_gate`` (an Event,
open by default) holds processing while cleared; ``batch_expire_after`` = N expires a batch after N
lines; ``batch_creations`` counts ``POST /v1/batches`` (a resumed worker must not add one).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _openai_batches import BatchAPI  # tests/ is on sys.path (conftest, bench, or run as a script)

_ANSWER = re.compile(r"Correct answer:\n<<<DATA answer\n(.*?)\nDATA>>>", re.S)
_HINT = re.compile(r"Every answer must be <<<DATA answer\n(.*?)\nDATA>>>", re.S)
_N = re.compile(r"Write (\d+) NEW")
_DOMAIN = re.compile(r"Domain: <<<DATA domain\n(.*?)\nDATA>>>", re.S)


class FakeOpenAI(BatchAPI):
    def __init__(self, *, latency_s: float = 0.0, reject_json_schema: bool = False, port: int = 0):
        self.latency_s = latency_s
        self.reject_json_schema = reject_json_schema
        self.lock = threading.Lock()
        self.hits: list[dict] = []          # one per HTTP request: {status, body, auth}
        self.attempts: dict[str, int] = {}  # request body -> attempts so far
        self.inflight = 0
        self.max_inflight = 0
        self.synth_counter = 0
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_creations = 0
        self.batch_gate = threading.Event()
        self.batch_gate.set()
        self.batch_expire_after: int | None = None
        self.batch_line_delay_s = 0.0
        self.batch_api = True  # False: /v1/files and /v1/batches answer 404 (a server without them)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.handle_error = self._handle_error
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle_error(self, request, client_address) -> None:
        import sys
        import traceback

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client killed mid-request (the kill -9 tests): nothing to report
        traceback.print_exc()

    # ------------------------------------------------------------ counting helpers

    def count(self, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for h in self.hits if status is None or h["status"] == status)

    # ------------------------------------------------------------ replies

    def _reply_text(self, body: dict) -> tuple[str, str | None]:
        user = body["messages"][-1]["content"]
        if "[[refuse]]" in user:
            return "I'm sorry, but I can't help with that request.", "I can't help with that request."
        if "[[garbage]]" in user:
            return "Here are some ideas: {items: [oops, not json", None
        n = _N.search(user)
        if n:  # synthesis
            k = int(n.group(1))
            hint = _HINT.search(user)
            dom = _DOMAIN.search(user)
            domain = dom.group(1) if dom else "x"
            with self.lock:
                base = self.synth_counter
                self.synth_counter += k
            items = []
            for i in range(k):
                ans = hint.group(1) if hint else str(base + i)
                items.append({"input": f"Synthetic {domain} story number {base + i} about unusual event {base + i} "
                                       f"with details {base + i} {base + i}.",
                              "answer": ans, "rationale": f"It concerns {ans}. The answer is: {ans}"})
            payload = json.dumps({"items": items})
            if "[[fence]]" in user:
                return f"Sure! Here you go:\n```json\n{payload}\n```\nHope this helps.", None
            return payload, None
        gold = _ANSWER.search(user)
        if gold:  # rationale with the gold answer given
            return f"Reading the text carefully, it is about {gold.group(1)}. The answer is: {gold.group(1)}", None
        solve = re.search(r"\[\[solve:(.*?)\]\]", user)
        if solve:
            return f"Solving it blind. The answer is: {solve.group(1)}", None
        m = re.search(r"Synthetic (\S+) story", user)
        ans = m.group(1) if m else "unknown"
        return f"Solving it blind. The answer is: {ans}", None

    def answer(self, body: dict, user: str, attempt: int):
        if self.reject_json_schema and body.get("response_format", {}).get("type") == "json_schema":
            return 400, {"error": {"message": "response_format json_schema is not supported by this server",
                                   "type": "invalid_request_error", "param": "response_format"}}, {}
        if "[[401]]" in user:
            return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}}, {}
        if "[[500]]" in user:
            return 500, {"error": {"message": "internal error", "type": "server_error"}}, {}
        if "[[429]]" in user and attempt == 0:
            return 429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error",
                                   "code": "rate_limit_exceeded"}}, {"Retry-After": "0"}
        text, refusal = self._reply_text(body)
        prompt_tokens = sum(len(m["content"]) // 4 for m in body["messages"])
        completion_tokens = max(1, len(text) // 4)
        return 200, {
            "id": f"chatcmpl-{int(time.time() * 1e6)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }, {}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body leave in one write (no Nagle/delayed-ACK stall per reply)

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def _send_bytes(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path.startswith(("/v1/batches", "/v1/files/")):
                    status, obj = server.batch_get(self.path.split("?")[0])
                    return self._send_bytes(obj) if isinstance(obj, bytes) else self._send(status, obj)
                if self.path.rstrip("/") != "/stats":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                with server.lock:
                    by: dict[str, int] = {}
                    for h in server.hits:
                        by[str(h["status"])] = by.get(str(h["status"]), 0) + 1
                    self._send(200, {"by_status": by, "max_inflight": server.max_inflight,
                                     "batch_creations": server.batch_creations})

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") == "/control":
                    ctl = json.loads(raw)
                    server.latency_s = float(ctl.get("latency_s", server.latency_s))
                    if "batch_hold" in ctl:
                        (server.batch_gate.clear if ctl["batch_hold"] else server.batch_gate.set)()
                    return self._send(200, {"latency_s": server.latency_s, "batch_creations": server.batch_creations})
                if self.path.startswith(("/v1/batches", "/v1/files")):
                    if not server.batch_api:
                        return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return self._send(*server.batch_post(self.path.split("?")[0], self.headers, raw))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                body = json.loads(raw)
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                    attempt = server.attempts.get(raw.decode(), 0)
                    server.attempts[raw.decode()] = attempt + 1
                try:
                    delay = server.latency_s
                    m = re.search(r"\[\[slow:([\d.]+)\]\]", user)
                    if m:
                        delay += float(m.group(1))
                    if delay:
                        time.sleep(delay)
                    status, obj, headers = server.answer(body, user, attempt)
                finally:
                    with server.lock:
                        server.inflight -= 1
                        server.hits.append({"status": status, "user": user,
                                            "auth": self.headers.get("Authorization")})
                self._send(status, obj, headers)

        return Handler


class ServerProcess:
    """The same server in its own OS process (as a real endpoint is): no GIL shared with the client."""

    def __init__(self, latency_s: float = 0.0):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, __file__, "--latency", str(latency_s)],
                                     stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"test server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        self._root = self.base_url[: -len("/v1")]

    def _call(self, path: str, body: dict | None = None) -> dict:
        import urllib.request

        req = urllib.request.Request(self._root + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def count(self, status: int | None = None) -> int:
        by = self._call("/stats")["by_status"]
        return sum(by.values()) if status is None else by.get(str(status), 0)

    @property
    def max_inflight(self) -> int:
        return self._call("/stats")["max_inflight"]

    def set_latency(self, latency_s: float) -> None:
        self._call("/control", {"latency_s": latency_s})

    def hold_batches(self, hold: bool) -> None:
        """While held, submitted batches stay in progress (nothing is processed)."""
        self._call("/control", {"batch_hold": hold})

    @property
    def batch_creations(self) -> int:
        return self._call("/stats")["batch_creations"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the child exits when its stdin closes
            try:
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="OpenAI-compatible test server on 127.0.0.1")
    ap.add_argument("--latency", type=float, default=0.0)
    a = ap.parse_args()
    with FakeOpenAI(latency_s=a.latency) as srv:
        print(f"PORT {srv.port}", flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or exits)
