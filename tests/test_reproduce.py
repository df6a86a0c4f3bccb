"""bench/reproduce.py --quick: the reproduction's sweep, intervals and RESULT lines on the tiny model;
the same command again resumes (nothing is redone)."""

from __future__ import annotations

import importlib.util
import re

from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_reproduce", REPO / "bench" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_reproduction_reports_intervals_and_resumes(tmp_path, capsys):
    bench = _bench()
    argv = ["--quick", "--workspace", str(tmp_path / "ws")]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    results = dict(re.findall(r"^RESULT (\S+) (\S+)", out, re.M))
    assert set(results) == {"tail_macro_gain_a_vs_random", "tail_macro_gain_ci_low", "tail_macro_ci_halfwidth",
                            "reproduce_minutes"}
    assert float(results["tail_macro_gain_ci_low"]) <= float(results["tail_macro_gain_a_vs_random"])
    assert "| Random FT CoT | 2 |" in out and "| BalDistill-A | 2 |" in out
    assert "Paired differences against Random FT CoT" in out
    assert bench.main(argv) == 0                   # resumed: every run is finished already
    again = capsys.readouterr().out
    assert again.count("finished already, skipped") == 4
    assert dict(re.findall(r"^RESULT (\S+) (\S+)", again, re.M))["tail_macro_gain_a_vs_random"] \
        == results["tail_macro_gain_a_vs_random"]
