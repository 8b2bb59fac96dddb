"""Writing a run folder: atomic, never through a symlink, never over what the user has."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import infersim
from infersim import cli
from infersim.errors import InfersimError
from infersim.report import save as save_module
from infersim.report.save import save_result

FILES = {"summary.json", "requests.parquet", "token_gaps.parquet", "decode_epochs.parquet",
         "decode_runs.parquet", "timeseries.parquet", "links.parquet", "instances.parquet", "report.html"}


@pytest.fixture(scope="module")
def result():
    return infersim.simulate("default", overrides=["workload.requests=20"])


def _tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            out[key] = ("link:" + os.readlink(path) if path.is_symlink() else
                        path.read_bytes() if path.is_file() else "dir")
    return out


def test_a_new_folder_gets_every_file_and_nothing_is_left_beside_it(tmp_path, result):
    written = save_result(result, tmp_path / "deep" / "run", plots=False)
    assert {p.name for p in written} == FILES
    assert {p.name for p in (tmp_path / "deep" / "run").iterdir()} == FILES
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["run"]  # no staging left


def test_an_empty_folder_is_used_and_a_folder_with_files_is_refused(tmp_path, result):
    (tmp_path / "empty").mkdir()
    save_result(result, tmp_path / "empty", plots=False)
    assert {p.name for p in (tmp_path / "empty").iterdir()} == FILES
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text("my own results")
    with pytest.raises(InfersimError, match=r"--out: expected a new or empty folder \(--force"):
        save_result(result, tmp_path / "mine", plots=False)
    assert (tmp_path / "mine" / "summary.json").read_text() == "my own results"


def test_force_replaces_the_folder_as_a_whole(tmp_path, result):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "stale.txt").write_text("x")
    save_result(result, tmp_path / "old", plots=False, force=True)
    assert {p.name for p in (tmp_path / "old").iterdir()} == FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_a_symlink_is_never_followed(tmp_path, result):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "summary.json").write_text("precious")
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(InfersimError, match="not a symbolic link"):
        save_result(result, tmp_path / "link", plots=False, force=True)
    # a link planted inside the folder: --force replaces the folder, the target is untouched
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").symlink_to(outside / "summary.json")
    save_result(result, tmp_path / "run", plots=False, force=True)
    assert (outside / "summary.json").read_text() == "precious"
    assert not (tmp_path / "run" / "summary.json").is_symlink()


def test_a_file_in_the_way_is_refused(tmp_path, result):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InfersimError, match="a folder"):
        save_result(result, tmp_path / "file", plots=False)
    with pytest.raises(InfersimError, match="--out: expected a folder that can be created"):
        save_result(result, tmp_path / "file" / "run", plots=False)
    assert (tmp_path / "file").read_text() == "x"


def test_a_full_disk_half_way_leaves_no_trace_and_keeps_the_old_folder(tmp_path, result,
                                                                       monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("previous run")
    before = _tree(tmp_path)

    def full(frame, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("infersim.report.outputs.write_parquet", full)
    with pytest.raises(InfersimError, match="No space left on device"):
        save_result(result, tmp_path / "run", plots=False, force=True)
    assert _tree(tmp_path) == before


def test_run_refuses_a_used_folder_before_simulating(tmp_path, monkeypatch, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    simulated = []
    monkeypatch.setattr("infersim.api.simulate", lambda *a, **k: simulated.append(1))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "default", "--out", str(tmp_path / "out"), "-q"])
    assert exit_info.value.code == 2 and not simulated
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_scenario_named_dotdot_cannot_write_beside_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "summary.json").write_text("keep")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "default", "--set", "name=..", "--set", "workload.requests=5", "-q"])
    assert exit_info.value.code == 2
    assert "name: expected a name other than '.' or '..'" in capsys.readouterr().err
    assert (tmp_path / "summary.json").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_staging_is_private_until_renamed_then_has_the_usual_mode(tmp_path, result):
    save_result(result, tmp_path / "run", plots=False)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~mask
    assert save_module.check_out_dir(tmp_path / "new") is None
