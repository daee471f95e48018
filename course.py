"""
course.py — the four-week plan in one command, on the built-in corpus, ending in the written retrospective.

    make course                          # python course.py: within an hour on 2 cores (33.6 min measured)
    make course COURSE_MINUTES=20        # the same stages, every run shorter
    make course BASE=config/124m.py      # the real-scale version, on a rented GPU

    week 1  prepare.py: clean, dedup, tokenize the built-in corpus (+ its report); tokenizer_compare.py
    week 2  incidents.py: the accidents on purpose, each detected in its metrics, with the fix beside it
    week 3  train.py: the main run, with the monitor on and checkpoints, stopped in the middle by SIGTERM
            (what a preempted cloud GPU gets) and resumed; eval.py on the result
    week 4  sweeps.py: LR, batch, warmup, data mix, clean vs raw, and the scaling study
    then    retro.py: report/course/retrospective.md, every number read from the artifacts above

Unlike the scripts it calls, this file holds no method of its own: it is the plan's order, a time budget,
and a progress line per stage with the seconds it took (report/course/stages.json). Each stage is the
same command a learner would type, so the course can be redone by hand stage by stage.
"""
import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import UserError, cli, write_json

ROOT = Path(__file__).resolve().parent
PY = sys.executable

# The plan at 60 minutes on an idle 2-core CPU: steps (or sizes) per stage, scaled by --minutes / 60.
# Measured shares: the incident lab and the scaling study are the long poles.
PLAN_60 = dict(main_iters=2400, incident_iters=300, sweep_iters=300, scaling_jobs=2)  # 2,400 x 16 x 128 = 4.9M tokens
QUICK = dict(main_iters=40, incident_iters=30, sweep_iters=30, scaling_jobs=1)  # make test's shortened course
SWEEPS = ["lr", "batch", "warmup", "mix", "clean", "scaling"]


def scaled(minutes, quick):
    """Stage sizes for a budget: the 60-minute plan times minutes / 60, never below the quick course."""
    if quick:
        return dict(QUICK)
    factor = minutes / 60
    return {k: max(QUICK[k], round(v * factor)) for k, v in PLAN_60.items()}


# ---------------------------------------------------------------------------------------------------------
# running a stage: the command, its log, its seconds


def stage(log, name, command, budget_note=""):
    """Run one stage's command (its output to report/course/logs/NAME.log); a progress line with its time."""
    print(f"[course] {name} ...{budget_note}", flush=True)
    t0 = time.time()
    path = log["dir"] / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        rc = subprocess.run([PY, *map(str, command)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - t0
    log["stages"].append({"stage": name, "seconds": round(seconds, 1), "exit_code": rc, "log": str(path)})
    write_json(log["dir"] / "stages.json", log["stages"])
    print(f"[course] {name}: {'done' if rc == 0 else f'FAILED (exit {rc}, see {path})'} in {seconds:.0f} s", flush=True)
    if rc != 0:
        raise UserError(f"course stage '{name}' failed (exit {rc}); its output is in {path}")


def main_run_with_a_kill(log, base, dataset, out_dir, iters, price, extra=()):
    """Week 3: the main run, SIGTERM half-way (a preemption), then --resume to the end."""
    args = [ROOT / "train.py", base, f"--dataset={dataset}", f"--out_dir={out_dir}", f"--max_iters={iters}",
            f"--lr_decay_iters={iters}", f"--eval_interval={max(1, iters // 10)}",
            f"--checkpoint_interval={max(1, iters // 5)}", f"--price_per_hour={price}", "--spike_policy='rollback'",
            *extra]
    print("[course] week3_main ... (the main run, stopped half-way by SIGTERM, then resumed)", flush=True)
    t0 = time.time()
    path = log["dir"] / "logs" / "week3_main.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        proc = subprocess.Popen([PY, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        for line in proc.stdout:  # the SIGTERM goes in once half the steps are done
            out.write(line)
            if line.startswith("step") and int(line.split()[1]) >= iters // 2:
                proc.send_signal(signal.SIGTERM)
                break
        out.write(proc.stdout.read())
        stopped = proc.wait()
        out.flush()  # the resumed run writes to the same file: ours first
        resumed = subprocess.run([PY, *map(str, args), "--resume"], cwd=ROOT, stdout=out,
                                 stderr=subprocess.STDOUT).returncode
    log["stages"].append({"stage": "week3_main", "seconds": round(time.time() - t0, 1), "exit_code": resumed,
                          "stopped_with": stopped, "log": str(path)})
    write_json(log["dir"] / "stages.json", log["stages"])
    print(f"[course] week3_main: stopped (exit {stopped}), resumed (exit {resumed}) in "
          f"{time.time() - t0:.0f} s", flush=True)
    if resumed not in (0, 1):  # 1 = diverged: a finding for the retrospective, not a broken course
        raise UserError(f"course: the main run failed after its resume (exit {resumed}); see {path}")


def sample_text(data_dir, out_file, max_tokens=400_000):
    """A slice of the dataset's train.bin decoded back to text: what tokenizer.py compare measures on."""
    import numpy as np
    from tokenizer import load_tokenizer
    enc = load_tokenizer(Path(data_dir) / "tokenizer")
    ids = np.fromfile(Path(data_dir) / "train.bin", dtype=np.uint16)[:max_tokens]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(enc.decode([int(t) for t in ids if t != enc.eot_token]), encoding="utf-8")
    return out_file


# ---------------------------------------------------------------------------------------------------------
# the four weeks


def course(minutes=60, base="config/tiny.py", quick=False, price=0.0, out="out/course", report="report/course",
           sweeps=None):
    sizes, out, report = scaled(minutes, quick), Path(out), Path(report)
    log = {"dir": ROOT / report, "stages": []}
    t0 = time.time()
    print(f"[course] budget {minutes} min{' (quick)' if quick else ''}: {json.dumps(sizes)}", flush=True)
    # week 1: the data
    stage(log, "week1_prepare", [ROOT / "prepare.py", "--out", "data/default"])
    sample = sample_text(ROOT / "data/default", ROOT / out / "tokenizer_sample.txt")
    stage(log, "week1_tokenizer", [ROOT / "tokenizer_compare.py", "--input", sample, "--sizes",
                                   "512,1024" if quick else "1024,4096,8192", "--out", report / "tokenizer"]
          + (["--no-sentencepiece"] if quick else []))
    # week 2: the accidents
    incident_set = ["--set", f"max_iters={sizes['incident_iters']}", f"lr_decay_iters={sizes['incident_iters']}"]
    stage(log, "week2_incidents", [ROOT / "incidents.py", *incident_set, "--seeds", "1", "--no-sweep"]
          + (["--only", "lr_x10", "fp16_no_scaler"] if quick else []))
    # week 3: the main run, a preemption in the middle, the evaluation
    main_run_with_a_kill(log, base, "default", out / "main", sizes["main_iters"], price,
                         ["--eval_iters=2", "--batch_size=8", "--compile_model=False"] if quick else [])
    stage(log, "week3_eval", [ROOT / "eval.py", "--ckpt", out / "main"] + (["--max-tokens", "20000"] if quick else []))
    # week 4: the controlled experiments
    sweep_set = ["--set", f"max_iters={sizes['sweep_iters']}", f"lr_decay_iters={sizes['sweep_iters']}"]
    for name in sweeps or (["lr"] if quick else SWEEPS):
        extra = ["--jobs", str(sizes["scaling_jobs"])] if name == "scaling" else sweep_set
        stage(log, f"week4_sweep_{name}", [ROOT / "sweeps.py", name, *extra])
    # the retrospective
    stage(log, "retrospective", [ROOT / "retro.py", "--run", out / "main", "--data", "data/default",
                                 "--incidents", "report/incidents", "--sweeps", "report/sweeps", "--out", report])
    print(f"[course] finished in {(time.time() - t0) / 60:.1f} min: {report / 'retrospective.md'}", flush=True)
    return ROOT / report / "retrospective.md"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60, help="the time budget the stages are sized for")
    parser.add_argument("--base", default="config/tiny.py", help="the main run's config (config/124m.py on a GPU)")
    parser.add_argument("--price", type=float, default=0.0, help="USD per device-hour, for the cost lines")
    parser.add_argument("--quick", action="store_true", help="tiny everything (make test's shortened course)")
    parser.add_argument("--sweeps", help=f"week 4's experiments, comma-separated (default: {','.join(SWEEPS)})")
    parser.add_argument("--out", default="out/course")
    parser.add_argument("--report", default="report/course")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        raise UserError(f"--minutes {args.minutes}: want a positive budget")
    sweeps = args.sweeps.split(",") if args.sweeps else None
    unknown = sorted(set(sweeps or []) - set(SWEEPS))
    if unknown:
        raise UserError(f"--sweeps: unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(SWEEPS)}")
    course(args.minutes, args.base, args.quick, args.price, args.out, args.report, sweeps)
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
