"""``infersim report``: one self-contained HTML page per run or plan folder, checked in a real
headless browser (Debian's chromium, which ``.ci/run`` installs): it loads with no console
message and its screenshot is not blank. Without a browser those checks skip, saying why."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infersim.cli import main
from infersim.plan.executors import SerialExecutor
from infersim.plan.outputs import write_outputs
from infersim.plan.planner import plan_capacity
from infersim.report.html import write_report

TINY = Path(__file__).resolve().parent / "fixtures" / "plans" / "scenarios" / "tiny-disaggregated.yaml"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with pytest.raises(SystemExit) as done:
        main(["run", str(TINY), "--set", "workload.requests=80", "--out", str(out), "--quiet"])
    assert done.value.code in (0, None)
    return out


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    outcome = plan_capacity(TINY, rate=40.0, hardware=["b200", "a100"], precisions=["fp8"],
                            seeds=2, executor=SerialExecutor(), min_span_s=5.0,
                            bisection_steps=1)
    write_outputs(outcome, out, str(TINY))
    write_report(out)
    return out


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no headless browser: chromium is not installed (.ci/run installs Debian's "
                    "chromium with apt-get when it can)")
    return found


def render(page: Path, shot: Path) -> list[str]:
    """Open ``page`` in headless chromium, screenshot it, and return every console line."""
    run = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--enable-logging=stderr", "--v=0", "--window-size=1280,1600",
                          f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), run.stderr[-2000:]
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


def not_blank(shot: Path) -> bool:
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    return pixels.std() > 10 and (pixels < 200).mean() > 0.01


def test_run_report_is_self_contained_and_complete(run_dir):
    page = run_dir / "report.html"           # written by infersim run itself
    text = page.read_text()
    for heading in ("Summary", "Latency (ms)", "SLO verdicts", "Rejections and overload", "Cost",
                    "Plots"):
        assert f"<h2>{heading}</h2>" in text
    assert text.count("data:image/png;base64,") == 4
    assert "<script" not in text and not re.search(r"""(src|href)=["']https?:""", text)


def test_plan_report_has_a_row_per_chip_and_the_pareto_plot(plan_dir):
    text = (plan_dir / "report.html").read_text()
    assert "Best plan per chip" in text and "<td>b200</td>" in text and "<td>a100</td>" in text
    assert "cannot run it: has no fp8 peak" in text
    assert "2 seeds, 90% interval" in text and "data:image/png;base64," in text
    assert "Pruned before simulation" in text


@pytest.mark.parametrize("which", ["run_dir", "plan_dir"])
def test_reports_load_in_a_browser_without_console_messages_and_are_not_blank(which, request,
                                                                              tmp_path):
    folder = request.getfixturevalue(which)
    shot = tmp_path / "shot.png"
    assert render(folder / "report.html", shot) == []
    assert not_blank(shot)


def test_the_browser_check_catches_console_errors_and_blank_pages(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); missing();</script>"
                      "</body></html>")
    lines = render(broken, tmp_path / "broken.png")
    assert any("boom" in line for line in lines) and any("missing" in line for line in lines)
    assert not not_blank(tmp_path / "broken.png")


def test_report_of_a_folder_with_neither_file_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as failed:
        main(["report", str(tmp_path)])
    assert failed.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected a run folder (summary.json" in err


def _overload_note(summary: dict, tmp_path: Path) -> str:
    import json
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = write_report(tmp_path).read_text()
    return page.split("<h2>Rejections and overload</h2>")[1].split("<h2>")[0]


def test_overload_is_read_from_the_steady_window_not_from_busy_time(tmp_path):
    # A decode pool with a step in progress all the time is busy, not saturated (batch 9 of 256).
    calm = {"scenario_name": "x", "infersim": {"utilization": {"decode": 1.0}},
            "steady_state": {"overloaded": False, "too_short": False}}
    note = _overload_note(calm, tmp_path)
    assert "saturat" not in note and "no growing queue" in note
    busy = {**calm, "steady_state": {"overloaded": True, "too_short": False}}
    assert "overloaded in the steady window" in _overload_note(busy, tmp_path)
    short = {**calm, "steady_state": {"overloaded": False, "too_short": True}}
    assert "too short to reach a steady state" in _overload_note(short, tmp_path)
