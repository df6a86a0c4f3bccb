"""The Batch API half of the test server (``/v1/files``, ``/v1/batches``), mixed into ``FakeOpenAI``.

An uploaded JSONL request file is run line by line in a thread with the same replies as single calls
(``[[batchfail]]`` lines land in the error file). The state it uses (``files``, ``batches``,
``batch_gate``, ``batch_expire_after``, ``batch_line_delay_s``, ``batch_creations``, ``lock``) and
``answer`` live on ``FakeOpenAI``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import default as _email_policy


class BatchAPI:
    def _batch_obj(self, b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def create_batch(self, req: dict) -> tuple[int, dict]:
        f = self.files.get(req.get("input_file_id"))
        if f is None:
            return 404, {"error": {"message": "input file not found", "type": "invalid_request_error"}}
        now = int(time.time())
        lines = [json.loads(x) for x in f["data"].decode().splitlines() if x.strip()]
        b = {"id": f"batch_{uuid.uuid4().hex[:20]}", "object": "batch", "endpoint": req.get("endpoint"),
             "errors": None, "input_file_id": f["id"], "completion_window": req.get("completion_window", "24h"),
             "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
             "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
             "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
             "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
             "metadata": req.get("metadata") or None, "_lines": lines}
        with self.lock:
            self.batches[b["id"]] = b
            self.batch_creations += 1
        threading.Thread(target=self._process_batch, args=(b,), daemon=True).start()
        return 200, self._batch_obj(b)

    def _put_file(self, data: bytes, filename: str, purpose: str) -> dict:
        f = {"id": f"file-{uuid.uuid4().hex[:20]}", "object": "file", "bytes": len(data),
             "created_at": int(time.time()), "filename": filename, "purpose": purpose, "status": "processed"}
        with self.lock:
            self.files[f["id"]] = {**f, "data": data}
        return f

    def _process_batch(self, b: dict) -> None:
        b["status"], b["in_progress_at"] = "in_progress", int(time.time())
        out, err = [], []
        for n, line in enumerate(b["_lines"]):
            while not self.batch_gate.wait(0.05):
                if b["status"] == "cancelling":
                    break
            if b["status"] == "cancelling" or (self.batch_expire_after is not None and n >= self.batch_expire_after):
                break
            if self.batch_line_delay_s:
                time.sleep(self.batch_line_delay_s)
            body = line["body"]
            user = body["messages"][-1]["content"]
            status, obj, _ = (500, {"error": {"message": "batch worker lost", "type": "server_error"}}, None) \
                if "[[batchfail]]" in user else self.answer(body, user, 1)
            row = {"id": f"batch_req_{uuid.uuid4().hex[:12]}", "custom_id": line["custom_id"],
                   "response": {"status_code": status, "request_id": uuid.uuid4().hex[:12], "body": obj},
                   "error": None}
            (out if status == 200 else err).append(row)
            b["request_counts"]["completed" if status == 200 else "failed"] += 1
        if out:
            b["output_file_id"] = self._put_file("".join(json.dumps(r) + "\n" for r in out).encode(),
                                                 "batch_output.jsonl", "batch_output")["id"]
        if err:
            b["error_file_id"] = self._put_file("".join(json.dumps(r) + "\n" for r in err).encode(),
                                                "batch_errors.jsonl", "batch_output")["id"]
        now = int(time.time())
        if b["status"] == "cancelling":
            b["status"], b["cancelled_at"] = "cancelled", now
        elif self.batch_expire_after is not None and len(out) + len(err) < len(b["_lines"]):
            b["status"], b["expired_at"] = "expired", now
        else:
            b["status"], b["completed_at"] = "completed", now

    def batch_get(self, path: str) -> tuple[int, dict | bytes]:
        parts = path.strip("/").split("/")  # v1 batches [id] | v1 files id [content]
        if parts[1] == "batches":
            if len(parts) == 2:
                data = [self._batch_obj(b) for b in reversed(list(self.batches.values()))]
                return 200, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": False}
            b = self.batches.get(parts[2])
            return (200, self._batch_obj(b)) if b else (404, {"error": {"message": "no such batch"}})
        f = self.files.get(parts[2])
        if f is None:
            return 404, {"error": {"message": "no such file", "type": "invalid_request_error"}}
        return 200, (f["data"] if parts[-1] == "content" else {k: v for k, v in f.items() if k != "data"})

    def batch_post(self, path: str, headers, raw: bytes) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if parts[1] == "files":
            msg = BytesParser(policy=_email_policy).parsebytes(
                b"Content-Type: " + headers.get("Content-Type", "").encode() + b"\r\n\r\n" + raw)
            fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
            if "file" not in fields:
                return 400, {"error": {"message": "no file part", "type": "invalid_request_error"}}
            purpose = fields["purpose"].get_payload(decode=True).decode() if "purpose" in fields else "batch"
            return 200, self._put_file(fields["file"].get_payload(decode=True),
                                       fields["file"].get_filename() or "upload.jsonl", purpose)
        if len(parts) == 2:
            return self.create_batch(json.loads(raw))
        b = self.batches.get(parts[2])
        if b is None:
            return 404, {"error": {"message": "no such batch"}}
        if b["status"] in ("validating", "in_progress"):
            b["status"], b["cancelling_at"] = "cancelling", int(time.time())
        return 200, self._batch_obj(b)
