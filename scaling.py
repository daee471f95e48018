"""
scaling.py: fit a Chinchilla scaling law to measured runs, and read the compute-optimal model off it.

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models") model the final loss of a run with
N parameters trained on D tokens as

    L(N, D) = E + A / N^alpha + B / D^beta

E is the entropy of text that no model removes; A / N^alpha is what a model of N parameters cannot
represent; B / D^beta is what D tokens cannot teach. Training costs C ~= 6 N D FLOPs, so for a budget C
the loss is lowest where both terms trade off:

    N_opt(C) = G (C/6)^a,   D_opt(C) = (1/G) (C/6)^b,   a = beta / (alpha + beta),   b = alpha / (alpha + beta),
    G = (alpha A / (beta B))^(1 / (alpha + beta))

(minimise L(N, C/(6N)) over N: d/dN [A N^-alpha + B (6N/C)^beta] = 0). The famous "20 tokens per
parameter" is D_opt / N_opt at the paper's budgets by its Approaches 1 and 2; it is not a constant: it
changes with C unless a = b. The rounded Approach 3 constants printed in the paper (PAPER) give about 93
at Chinchilla's own budget (6 x 70e9 x 1.4e12 FLOPs): Besiroglu et al. (2024) trace that to the rounding
and to an optimizer stopped early; their refit of the same data is compatible with Approaches 1-2.

Two of the paper's three ways to fit it are here:
  Approach 3 (fit_law): all runs at once; minimise the Huber loss (delta 1e-3) between log L(N, D) and
      the log of the measured loss, written with log-sum-exp so the optimiser sees smooth, well-scaled
      numbers: log L = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e. The fit has
      local minima, so L-BFGS starts from the best points of a grid (grid_starts); the best fit wins.
  Approach 2 (isoflop_minima): runs grouped by compute budget (an IsoFLOP profile: several sizes, each
      trained on the tokens that spend the same C); per budget a parabola in log N through the losses; its
      vertex is N_opt(C) (and the parabola in log D gives D_opt(C)); then log N_opt = a log C + const and
      log D_opt = b log C + const by least squares. No law is assumed: a check on Approach 3's form.
The paper's Approach 3 figures (E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28) are PAPER below, its
three approaches' exponents PAPER_EXPONENTS, to be printed beside ours. bootstrap() and isoflop_interval()
give percentile intervals by refitting on runs drawn with replacement.

This file is the math only: sweeps_scaling.py (`python sweeps.py scaling`) trains the runs and calls
these functions.
"""
import itertools
import math

import numpy as np
import torch

PAPER = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. 2022, Approach 3
# (a, b) of N_opt ~ C^a and D_opt ~ C^b, the paper's Table 2, one row per approach
PAPER_EXPONENTS = {"Approach 1": (0.50, 0.50), "Approach 2": (0.49, 0.51), "Approach 3": (0.46, 0.54)}


def predict(law, N, D):
    """L(N, D) for a law dict {E, A, B, alpha, beta}; N, D scalars or arrays."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return law["E"] + law["A"] / N ** law["alpha"] + law["B"] / D ** law["beta"]


# ---------------------------------------------------------------------------------------------------------
# Approach 3: one law through every run


def huber(residual, delta):
    """Quadratic near 0, linear beyond delta: a few outlying runs (a bad seed, a diverged run) cannot pull
    the fit as far as they would with squared error."""
    small = residual.abs() <= delta
    return torch.where(small, 0.5 * residual ** 2, delta * (residual.abs() - 0.5 * delta))


def _fit_from(start, log_n, log_d, log_loss, delta, steps):
    """L-BFGS from one starting point (a, b, e, alpha, beta); returns (objective, parameters)."""
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta], lr=1.0, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        a, b, e, alpha, beta = theta
        terms = torch.stack([a - alpha * log_n, b - beta * log_d, e.expand_as(log_n)])  # (3, runs)
        value = huber(torch.logsumexp(terms, dim=0) - log_loss, delta).sum()
        value.backward()
        return value

    optimizer.step(objective)
    with torch.no_grad():
        a, b, e, alpha, beta = theta
        terms = torch.stack([a - alpha * log_n, b - beta * log_d, e.expand_as(log_n)])
        value = huber(torch.logsumexp(terms, dim=0) - log_loss, delta).sum().item()
    return value, theta.detach().tolist()


def grid_starts(N, D, loss, keep=3):
    """Starting points for L-BFGS. For fixed (alpha, beta) the law is LINEAR in (E, A, B):
    L = E + A x + B y with x = N^-alpha, y = D^-beta, so least squares gives them at once. Over a grid of
    (alpha, beta) the `keep` best fits with positive E, A, B (in log-loss error) start the real fit: the
    non-convex search becomes a 2-D grid, and L-BFGS only polishes."""
    N, D, loss = (np.asarray(x, dtype=float) for x in (N, D, loss))
    found = []
    for alpha, beta in itertools.product(np.linspace(0.05, 1.5, 30), repeat=2):
        X = np.stack([np.ones_like(N), N ** -alpha, D ** -beta], axis=1)  # (runs, 3)
        (E, A, B), *_ = np.linalg.lstsq(X, loss, rcond=None)
        if min(E, A, B) <= 0:
            continue
        error = np.sum((np.log(X @ [E, A, B]) - np.log(loss)) ** 2)
        found.append((error, [math.log(A), math.log(B), math.log(E), alpha, beta]))
    found.sort(key=lambda f: f[0])
    return [start for _, start in found[:keep]] or [[5.0, 5.0, 0.5, 0.3, 0.3]]


def fit_law(N, D, loss, delta=1e-3, steps=200, keep=3):
    """Approach 3. N, D, loss: one entry per run (final loss in nats). Returns {E, A, B, alpha, beta,
    objective}. The paper starts L-BFGS from a grid of 4,500 points; grid_starts() finds the few worth
    starting from, which matters on a 2-core machine and gives the same minimum on our tests."""
    log_n, log_d = (torch.tensor(np.log(x), dtype=torch.float64) for x in (N, D))
    log_loss = torch.tensor(np.log(loss), dtype=torch.float64)
    best = None
    for start in grid_starts(N, D, loss, keep):
        value, theta = _fit_from(start, log_n, log_d, log_loss, delta, steps)
        if math.isfinite(value) and (best is None or value < best[0]):
            best = (value, theta)
    a, b, e, alpha, beta = best[1]
    return dict(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta, objective=best[0])


def compute_optimal(law, C):
    """N_opt, D_opt and tokens per parameter for a budget of C training FLOPs (C = 6 N D), from the law."""
    alpha, beta = law["alpha"], law["beta"]
    G = (alpha * law["A"] / (beta * law["B"])) ** (1 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    N = G * (C / 6) ** a
    D = (C / 6) ** b / G
    return dict(C=C, N_opt=N, D_opt=D, tokens_per_param=D / N, a=a, b=b)


# ---------------------------------------------------------------------------------------------------------
# Approach 2: the minimum of each IsoFLOP profile


def isoflop_minima(N, D, loss, C=None):
    """Approach 2. Group runs by compute budget (C = 6ND rounded to 2 significant digits unless given: a
    grid laid out on IsoFLOP lines passes each run's nominal budget), and per budget with >= 3 sizes fit

        loss = p0 (log N)^2 + p1 log N + p2        its vertex, log N_opt = -p1 / (2 p0), is N_opt(C)

    and the same parabola in log D for D_opt(C). When C = 6ND exactly, log D = log(C/6) - log N, so the two
    vertices give N_opt D_opt = C/6; with a model's own FLOPs per token (the embedding and attention
    counted) they are two fits of one profile. Returns ([{C, N_opt, D_opt, loss_opt, inside, parabola}],
    a, b): a, b the slopes of log N_opt and log D_opt against log C (least squares) over the budgets whose
    vertex lies inside the sizes trained (`inside`: a vertex beyond them is an extrapolation, reported but
    not fitted); None where fewer than 2 budgets qualify."""
    N, D, loss = (np.asarray(x, dtype=float) for x in (N, D, loss))
    C = np.asarray(C, dtype=float) if C is not None else np.array([float(f"{6 * n * d:.2g}") for n, d in zip(N, D)])
    minima = []  # per budget with >= 3 distinct sizes and token counts
    for budget in sorted(set(C)):
        at = C == budget
        if min(len(set(N[at])), len(set(D[at]))) < 3:  # a parabola needs three distinct points
            continue
        p0, p1, p2 = np.polyfit(np.log(N[at]), loss[at], 2)
        q0, q1, _ = np.polyfit(np.log(D[at]), loss[at], 2)
        if p0 <= 0 or q0 <= 0:  # no minimum: the profile is still falling (or rising) at the edges
            continue
        log_n = -p1 / (2 * p0)
        minima.append({"C": float(budget), "N_opt": math.exp(log_n), "D_opt": math.exp(-q1 / (2 * q0)),
                       "loss_opt": float(np.polyval([p0, p1, p2], log_n)), "parabola": [float(p0), float(p1), float(p2)],
                       "inside": bool(N[at].min() <= math.exp(log_n) <= N[at].max())})
    fitted = [m for m in minima if m["inside"]]
    if len(fitted) < 2:
        return minima, None, None
    log_c = np.log([m["C"] for m in fitted])
    a = np.polyfit(log_c, np.log([m["N_opt"] for m in fitted]), 1)[0]
    b = np.polyfit(log_c, np.log([m["D_opt"] for m in fitted]), 1)[0]
    return minima, float(a), float(b)


def isoflop_interval(N, D, loss, C, samples=200, seed=0):
    """Percentile intervals (5%, 95%) of Approach 2's a and b: each budget's runs drawn with replacement
    (a profile keeps its budget; a draw with fewer than 3 distinct sizes in a budget loses that budget),
    the parabolas and the slopes refitted. Cheap: a parabola is a least-squares solve."""
    rng = np.random.default_rng(seed)
    N, D, loss, C = (np.asarray(x, dtype=float) for x in (N, D, loss, C))
    draws = {"a": [], "b": []}
    for _ in range(samples):
        pick = []
        for budget in sorted(set(C)):
            drawn = rng.choice(np.flatnonzero(C == budget), (C == budget).sum())
            if len(set(N[drawn])) >= 3:
                pick.extend(drawn)
        pick = np.array(pick, dtype=int)
        _, a, b = isoflop_minima(N[pick], D[pick], loss[pick], C[pick])
        if a is not None:
            draws["a"].append(a)
            draws["b"].append(b)
    return {key: (float(np.percentile(v, 5)), float(np.percentile(v, 95))) if v else (math.nan, math.nan)
            for key, v in draws.items()}


# ---------------------------------------------------------------------------------------------------------
# uncertainty


def bootstrap(N, D, loss, samples=50, seed=0, at=(), **fit_options):
    """Percentile intervals (5%, 95%) of alpha, beta, a, b, E: refit on runs drawn with replacement.
    at: [(N, D), ...] runs to predict; their intervals come back as loss_at_0, loss_at_1, ... (a prediction
    for a run the fit did not see, with the width the fitted runs allow)."""
    rng = np.random.default_rng(seed)
    N, D, loss = (np.asarray(x, dtype=float) for x in (N, D, loss))
    draws = {key: [] for key in ("alpha", "beta", "a", "b", "E", *(f"loss_at_{i}" for i in range(len(at))))}
    for _ in range(samples):
        pick = rng.integers(0, len(N), len(N))
        if len(set(zip(N[pick], D[pick]))) < 5:  # five free parameters need five distinct runs
            continue
        law = fit_law(N[pick], D[pick], loss[pick], **fit_options)
        optimal = compute_optimal(law, 1e18)
        for key in ("alpha", "beta", "E"):
            draws[key].append(law[key])
        draws["a"].append(optimal["a"])
        draws["b"].append(optimal["b"])
        for i, (n, d) in enumerate(at):
            draws[f"loss_at_{i}"].append(float(predict(law, n, d)))
    return {key: (float(np.percentile(v, 5)), float(np.percentile(v, 95))) if v else (math.nan, math.nan)
            for key, v in draws.items()}
