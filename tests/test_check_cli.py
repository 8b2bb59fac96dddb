"""``infersim check`` end to end on the real simulator: the shipped plans hold (exit 0), the
deliberately broken plan fails (exit 1) with a JUnit report CI systems read, and bad input is one
line with exit 2."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from infersim.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PLANS = sorted((REPO / "plans").glob("*.yaml"))
BROKEN = REPO / "tests" / "fixtures" / "plans" / "broken-unified.yaml"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_shipped_plans_hold(capsys, tmp_path):
    assert len(SHIPPED_PLANS) >= 2
    code, out, err = run(["check", *map(str, SHIPPED_PLANS), "--junit", str(tmp_path / "j.xml")],
                         capsys)
    assert code == 0, out + err
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"
    # Every shipped plan carries a baseline, and each recorded metric is compared.
    assert sum(1 for case in root.iter("testcase") if case.get("name").startswith("baseline")) > 10


def test_broken_plan_fails_with_junit(capsys, tmp_path):
    report = tmp_path / "reports" / "junit.xml"
    code, _out, err = run(["check", str(BROKEN), str(SHIPPED_PLANS[0]), "--junit", str(report)],
                         capsys)
    assert code == 1
    assert "FAIL broken-unified" in err
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"broken-unified", SHIPPED_PLANS[0].stem}
    broken = suites["broken-unified"]
    assert (broken.get("tests"), broken.get("failures")) == ("3", "2")
    failed = {case.get("name"): case.find("failure") for case in broken.findall("testcase")}
    assert failed["p99_ttft_ms <= 1000"] is None
    message = failed["p99_itl_ms <= 20"].get("message")
    assert message.startswith("p99_itl_ms = ") and message.endswith(", bound max 20")
    assert float(message.split(" = ")[1].split(",")[0]) > 20
    assert suites[SHIPPED_PLANS[0].stem].get("failures") == "0"


def test_update_baseline_records_then_detects_drift(capsys, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "plans" / "scenarios" / "tiny-disaggregated.yaml",
                scenarios)
    plan = tmp_path / "tiny.yaml"
    plan.write_text("scenario: scenarios/tiny-disaggregated.yaml\nset: {workload.requests: 60}\n"
                    "assert: {p99_ttft_ms: {max: 1000}}\nbaseline: tiny.baseline.json\n")
    code, _, err = run(["check", str(plan)], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "--update-baseline" in err
    assert run(["check", str(plan), "--update-baseline"], capsys)[0] == 0
    assert (tmp_path / "tiny.baseline.json").is_file()
    assert run(["check", str(plan)], capsys)[0] == 0
    # A different load moves the numbers beyond the 5% baseline band: the check fails.
    plan.write_text(plan.read_text().replace("workload.requests: 60",
                                             "workload.requests: 60, workload.arrival.rate: 30"))
    code, out, _ = run(["check", str(plan)], capsys)
    assert code == 1 and "FAIL" in out


@pytest.mark.parametrize(("body", "needle"), [
    ("scenario: missing.yaml\nassert: {p99_ttft_ms: {max: 1}}\n", "scenario: expected an existing"),
    ("scenario: ../../../scenarios/default.yaml\nassert: {p99_ttft: {max: 1}}\n",
     "assert.p99_ttft: expected a summary metric name"),
    ("scenario: ../../../scenarios/default.yaml\nassert: {p99_ttft_ms: {max: [1]}}\n",
     "assert.p99_ttft_ms.max: expected a finite number"),
])
def test_bad_plan_is_one_line_exit_2(capsys, tmp_path, body, needle):
    plan = tmp_path / "bad.yaml"
    plan.write_text(body.replace("../../../scenarios", str(REPO / "scenarios")))
    code, _, err = run(["check", str(plan)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"infersim: error: {plan}: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_junit_reports_readable_plans_and_names_the_unreadable(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: missing.yaml\nassert: {p99_ttft_ms: {max: 1}}\n")
    report = tmp_path / "junit.xml"
    code, _out, err = run(["check", str(SHIPPED_PLANS[0]), str(bad), "--junit", str(report)],
                          capsys)
    assert code == 2                                   # bad input still fails the command
    assert f"PASS {SHIPPED_PLANS[0].stem}" in err and "1 unreadable" in err
    assert err.strip().splitlines()[-1].startswith(f"infersim: error: {bad}: scenario: ")
    suites = {s.get("name"): s for s in ET.parse(report).getroot().findall("testsuite")}
    assert set(suites) == {SHIPPED_PLANS[0].stem, "bad"}
    assert suites[SHIPPED_PLANS[0].stem].get("failures") == "0"
    error = suites["bad"].find("testcase").find("error")
    assert suites["bad"].get("errors") == "1" and "scenario: expected an existing" in \
        error.get("message")
