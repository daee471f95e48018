"""
range_test.py — the LR range test (train.py with lr_schedule="range_test"): which learning rate to start from.

    python train.py config/tiny.py --lr_schedule=range_test --min_lr=1e-5 --learning_rate=1.0 --max_iters=200

Smith (2017): train briefly while the LR grows exponentially from min_lr to learning_rate, and watch the
loss. Too small an LR barely moves it; somewhere it falls fastest; past some LR it turns and blows up.
The run stops there (smoothed loss 4x its best). Two readings bracket a good LR: where the loss falls
fastest (fastai's "steep"), and a tenth of the LR at the minimum (fastai's older rule, below the edge).
The loss at each LR also carries all the training before it, which flatters the high end: the bracket is
where the LR sweep (sweeps.py lr) starts, not its answer.

Unlike train.get_lr, which says what the LR is at a step, this file reads what the loss did with it.
"""
import math

import numpy as np

from common import write_json


def range_test_over(points, step, lr, loss, beta=0.9):
    """Append (step, lr, loss) and the bias-corrected moving average of the loss to points (a list the
    caller keeps); True once the loss blew up: 4x its best smoothed value, or not finite."""
    average = beta * (points[-1]["average_raw"] if points else 0.0) + (1 - beta) * loss
    points.append({"step": step, "lr": lr, "loss": loss, "average_raw": average,
                   "smoothed": average / (1 - beta ** (len(points) + 1))})
    best = min(p["smoothed"] for p in points)
    return len(points) > 10 and (points[-1]["smoothed"] > 4 * best or not math.isfinite(loss))


def range_test_report(points, out_dir):
    """Print the smoothed loss against the LR and the bracket to sweep; write out_dir/range_test.json."""
    if not points:
        return None
    smoothed = np.array([p["smoothed"] for p in points])
    lrs = np.array([p["lr"] for p in points])
    lowest = int(np.nanargmin(smoothed))
    slope = np.gradient(smoothed[:lowest + 1], np.log(lrs[:lowest + 1])) if lowest > 1 else np.zeros(1)
    steepest = int(np.argmin(slope))
    bracket = sorted([lrs[steepest], lrs[lowest] / 10])
    result = {"lr_at_min_loss": lrs[lowest], "lr_steepest": lrs[steepest], "suggested_range": bracket,
              "points": [{k: v for k, v in p.items() if k != "average_raw"} for p in points]}
    print("LR range test: smoothed loss against the learning rate")
    for i in np.unique([*np.linspace(0, len(points) - 1, 10).round().astype(int), lowest, steepest]):
        mark = " <- minimum" if i == lowest else " <- steepest fall" if i == steepest else ""
        print(f"  lr {lrs[i]:9.2e}  loss {smoothed[i]:.4f}{mark}")
    print(f"steepest fall at lr {lrs[steepest]:.2e}, minimum at {lrs[lowest]:.2e}: sweep learning_rate "
          f"from {bracket[0]:.1e} to {bracket[1]:.1e} (the steepest fall, a tenth of the minimum's)")
    write_json(f"{out_dir}/range_test.json", result)
    return result
