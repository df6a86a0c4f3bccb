"""`baldistill teacher ...` end to end on the bundled data (recorded) and against the local server."""

from __future__ import annotations

import json

from _openai_server import FakeOpenAI

from baldistill_core.synthetic import review
from baldistill_core.cli import main


def test_annotate_import_and_synthesize(ws, capsys):
    w, conn = ws
    root = str(w.root)
    assert main(["teacher", "annotate", "r52", "--limit", "12", "-w", root, "--run-id", "cli"]) == 0
    out = capsys.readouterr()
    assert "rationales kept" in out.out and "annotate [" in out.err
    assert main(["teacher", "annotate", "r52", "--limit", "12", "-w", root, "--run-id", "cli", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["cached"] == res["ledger"]["cached_calls"] > 0 and res["ledger"]["examples"] == res["cached"]

    assert main(["teacher", "import-recorded", "math_lt", "--per-domain", "2", "-w", root]) == 0
    assert "8 recorded synthetic" in capsys.readouterr().out

    assert main(["teacher", "annotate", "r52", "--limit", "5", "-w", root, "--budget", "2", "--run-id", "b"]) == 3
    assert "budget" in capsys.readouterr().err

    with FakeOpenAI() as server:
        rc = main(["teacher", "synthesize", "r52", "--domain", "tin", "-n", "3", "-w", root, "--backend", "openai",
                   "--base-url", server.base_url, "--model", "fake", "--run-id", "cli-s"])
    assert rc == 0 and "3 synthetic 'tin' examples pending review" in capsys.readouterr().out
    assert len(review.queue(conn, "r52", run_id="cli-s", status="pending")) == 3
