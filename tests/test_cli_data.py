"""The `baldistill` CLI twins of the Data page, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys


def _cli(*args, ws):
    return subprocess.run([sys.executable, "-m", "baldistill_core.cli", *args, "-w", str(ws)],
                          capture_output=True, text=True, timeout=300)


def test_stats_and_plan(tmp_path):
    r = _cli("data", "stats", "math_lt", "--json", ws=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["domains"] == 7 and out["total"] == 4125 and 1.0 < out["zipf_exponent"] < 1.3
    r = _cli("plan", "math_lt", "-B", "2100", "-K", "5", "--json", ws=tmp_path)
    rows = json.loads(r.stdout)
    for stage in range(5):
        assert sum(x["quota"] for x in rows if x["stage"] == stage) == 420


def test_import_reports_bad_file_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "answer": "b"}\n', encoding="utf-8")
    r = _cli("data", "import", "mine", str(bad), ws=tmp_path)
    assert r.returncode == 2
    assert "domain column 'domain' not found" in r.stderr and "--domain-field" in r.stderr
    good = tmp_path / "good.jsonl"
    good.write_text('{"input": "a", "answer": "x"}\n{"input": "b", "answer": "y"}\n', encoding="utf-8")
    r = _cli("data", "import", "mine", str(good), "--domain-field", "", "--id-field", "", ws=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported mine: 2 train" in r.stdout
