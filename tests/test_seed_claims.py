"""docs/seed-claims.md: every claim of the seed articles has its row, and the page is current
with the script and the quoted claims (tools/seed_claims.py regenerates it; the digest at its
foot is recomputed here, so a stale page fails without re-planning)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("seed_claims", REPO / "tools" / "seed_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_current_with_its_inputs(tool):
    page = (REPO / "docs" / "seed-claims.md").read_text()
    assert tool.committed_digest(page) == tool.inputs_digest(), \
        "docs/seed-claims.md is stale: run python tools/seed_claims.py"


def test_every_claim_has_a_row_a_figure_and_a_reason(tool):
    page = (REPO / "docs" / "seed-claims.md").read_text()
    claims = tool.claims()
    assert len(claims) >= 9 and set(tool.CHECKS) == {c["id"] for c in claims}
    for claim in claims:
        row = next(line for line in page.splitlines() if line.startswith(f"| `{claim['id']}`"))
        verdict = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert verdict in ("agrees", "disagrees", "no figure claimed", "not reproduced"), row
        assert f"### `{claim['id']}`" in page
    assert page.count("**Why they differ:**") == len(claims)


@pytest.mark.parametrize(("figure", "value", "expected"), [
    (1.5, 1.6, "agrees"), (1.5, 1.05, "disagrees"), ([2.0, 4.0], 3.1, "agrees"),
    ([2.0, 4.0], 1.2, "disagrees"), ("< 1", 0.8, "agrees"), ("< 1", 1.0, "disagrees"),
    (None, 2.0, "no figure claimed"), (4.0, None, "not reproduced"),
])
def test_verdicts(tool, figure, value, expected):
    assert tool.verdict(figure, value) == expected
