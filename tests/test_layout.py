"""The repository keeps its promised shape: every stage has its file, generated data stays out of git."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_stage_has_its_file():
    for name in ["prepare.py", "dedup.py", "tokenizer.py", "model.py", "train.py", "sample.py",
                 "eval.py", "kernels/attention.py", "kernels/rmsnorm.py", "README.md",
                 "requirements.txt", "Makefile", ".ci/run"]:
        assert (ROOT / name).is_file(), f"missing {name}"


def test_generated_folders_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for folder in ["/data/", "/out/", "/.venv/"]:
        assert folder in ignored


def test_torch_is_pinned_exactly():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in lines
