"""The stage breakdown's arithmetic: cumulative passes -> each stage's own seconds and share."""

from __future__ import annotations

import pytest

from bench import report_stages
from bench.contenders_stages import breakdown


def passes(**cpu: float) -> dict[str, dict[str, float]]:
    return {stage: {"cpu": seconds, "wall": 2 * seconds} for stage, seconds in cpu.items()}


def test_each_stage_is_its_pass_minus_the_pass_before():
    stages = breakdown(passes(decompress=0.1, parse=0.5, convert=0.7, clean=1.0, encode=1.8, write=2.0))
    assert {k: round(v["cpu"], 6) for k, v in stages.items()} == {
        "decompress": 0.1,
        "parse": 0.4,
        "convert": 0.2,
        "clean": 0.3,
        "encode": 0.8,
        "write": 0.2,
    }
    assert stages["encode"]["wall"] == pytest.approx(1.6)


def test_upload_replaces_the_write_so_it_is_taken_against_encode():
    stages = breakdown(passes(decompress=0.1, parse=0.5, convert=0.7, clean=1.0, encode=1.8, write=2.0, upload=2.5))
    assert stages["upload"]["cpu"] == pytest.approx(0.7)
    assert stages["write"]["cpu"] == pytest.approx(0.2)


def test_shares_are_of_the_whole_split_and_the_table_names_every_stage():
    rounds = [
        {"passes": passes(decompress=0.1, parse=0.5, convert=0.7, clean=1.0, encode=1.8, write=2.0)},
        {"passes": passes(decompress=0.3, parse=0.5, convert=0.7, clean=1.0, encode=1.8, write=4.0)},
    ]
    summary = report_stages.summarize(rounds)
    assert summary["split_cpu"] == pytest.approx(3.0)
    assert summary["stages"]["decompress"]["cpu_share"] == pytest.approx((0.1 / 2.0 + 0.3 / 4.0) / 2)
    text = report_stages.markdown(summary)
    assert all(f"| {stage} |" in text for stage in summary["stages"])
    assert "upload" not in summary["stages"]  # not measured, not invented
