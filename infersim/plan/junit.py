"""JUnit XML, the test-report format every CI system reads.

GitHub Actions (through report actions), GitLab, Jenkins, Buildkite and CircleCI all render the
same shape: ``<testsuites>`` holding one ``<testsuite>`` per group, each holding ``<testcase>``
elements, a failing case carrying a ``<failure message=... type=...>`` child whose text explains
it. ``infersim check`` maps one plan file to one testsuite and one assertion (or one baseline
comparison) to one testcase, so a CI page lists "p99_ttft_ms <= 800 ms" as a test that passed or
failed with the measured value next to the bound.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # a report record, not something pytest should collect

    name: str
    classname: str
    time_s: float = 0.0
    failure: str | None = None          # short message; None when the case passed
    failure_detail: str = ""            # longer text for the failure body
    error: str | None = None            # the case could not be evaluated (metric missing, ...)


@dataclass(frozen=True)
class TestSuite:
    __test__ = False

    name: str
    cases: tuple[TestCase, ...]
    time_s: float = 0.0
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(1 for case in self.cases if case.failure is not None)

    @property
    def errors(self) -> int:
        return sum(1 for case in self.cases if case.error is not None)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def to_xml(suites: Sequence[TestSuite], name: str = "infersim check") -> ET.Element:
    root = ET.Element("testsuites", {
        "name": name,
        "tests": str(sum(len(s.cases) for s in suites)),
        "failures": str(sum(s.failures for s in suites)),
        "errors": str(sum(s.errors for s in suites)),
        "time": _seconds(sum(s.time_s for s in suites)),
    })
    for suite in suites:
        element = ET.SubElement(root, "testsuite", {
            "name": suite.name,
            "tests": str(len(suite.cases)),
            "failures": str(suite.failures),
            "errors": str(suite.errors),
            "skipped": "0",
            "time": _seconds(suite.time_s),
        })
        if suite.properties:
            props = ET.SubElement(element, "properties")
            for key, value in suite.properties.items():
                ET.SubElement(props, "property", {"name": key, "value": str(value)})
        for case in suite.cases:
            item = ET.SubElement(element, "testcase", {
                "classname": case.classname, "name": case.name, "time": _seconds(case.time_s)})
            if case.failure is not None:
                failure = ET.SubElement(item, "failure",
                                        {"message": case.failure, "type": "AssertionError"})
                failure.text = case.failure_detail or case.failure
            if case.error is not None:
                error = ET.SubElement(item, "error", {"message": case.error, "type": "Error"})
                error.text = case.error
    return root


def write_junit(suites: Sequence[TestSuite], path: Path, name: str = "infersim check") -> Path:
    """Write the report; the file always parses and carries the counts at every level."""
    root = to_xml(suites, name)
    ET.indent(root)
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
