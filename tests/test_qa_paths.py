"""QA: the README's paths (``scenarios/h100-disaggregated.yaml``) work from any folder.

The README writes shipped data as paths relative to a checkout. An installed wheel carries that
data inside the package, so from any other folder those paths would not exist; the data-folder
resolver maps ``<kind>/<file>`` onto the shipped folder when no such file exists where the user
stands, and a file that does exist there always wins.
"""

from __future__ import annotations

import pytest

from infersim.cli import main
from infersim.paths import find_data_file, shipped_dir


def test_readme_style_paths_resolve_to_shipped_data_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = find_data_file("scenarios", "scenarios/h100-disaggregated.yaml")
    assert found == shipped_dir("scenarios") / "h100-disaggregated.yaml"
    assert find_data_file("hardware", "hardware/h100") == shipped_dir("hardware") / "h100.yaml"
    assert find_data_file("scenarios", "scenarios/no-such.yaml") is None
    assert find_data_file("scenarios", "other/h100-disaggregated.yaml") is None


def test_a_local_file_of_that_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    local = tmp_path / "scenarios" / "default.yaml"
    local.write_text("name: mine\n")
    assert find_data_file("scenarios", "scenarios/default.yaml").resolve() == local.resolve()


def test_validate_accepts_the_readme_path_outside_a_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "scenarios/h100-disaggregated.yaml"])
    out, err = capsys.readouterr()
    assert (exit_info.value.code or 0) == 0, err
    assert out.startswith("ok: h100-disaggregated")
