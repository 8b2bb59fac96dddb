"""The scenario hash covers the data files a scenario reads, not only its own text."""

import shutil
from pathlib import Path

from infersim.paths import shipped_dir
from infersim.scenario import load_scenario


def _scenario(tmp_path: Path, hardware: str, mix: str = "chat") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"""
name: hash-check
seed: 1
model: llama-3.1-8b
pools:
  mixed: {{role: mixed, hardware: {hardware}, instances: 1}}
workload:
  arrival: {{process: poisson, rate: 1}}
  requests: 10
  mix: {mix}
""")
    return path


def test_editing_a_referenced_hardware_file_changes_the_hash(tmp_path):
    chip = tmp_path / "my-h100.yaml"
    shutil.copy(shipped_dir("hardware") / "h100.yaml", chip)
    path = _scenario(tmp_path, "my-h100.yaml")
    before = load_scenario(str(path)).hash
    assert load_scenario(str(path)).hash == before  # stable while nothing changes
    chip.write_text(chip.read_text() + "\n# edited\n")
    assert load_scenario(str(path)).hash != before


def test_a_local_mix_file_is_part_of_the_hash(tmp_path):
    mix = tmp_path / "my-chat.yaml"
    shutil.copy(shipped_dir("workloads") / "chat.yaml", mix)
    path = _scenario(tmp_path, "h100", mix="my-chat.yaml")
    before = load_scenario(str(path)).hash
    mix.write_text(mix.read_text() + "\n# edited\n")
    assert load_scenario(str(path)).hash != before
