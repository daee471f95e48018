"""scaling.py: the Chinchilla fit recovers a known law from synthetic losses; the compute-optimal
formulas agree with a brute-force search; IsoFLOP minima (Approach 2) recover the exponents a, b the law
implies, for C = 6ND and for a model's own FLOPs per token, with and without noise. Deterministic: fixed
seeds, no training."""
import math

import numpy as np
import pytest

import scaling

LAW = dict(E=1.8, A=300.0, B=500.0, alpha=0.35, beta=0.30)


def synthetic_runs(noise=0.003, seed=0):
    """6 model sizes x 4 token budgets, the loss the law predicts times log-normal noise (0.3%)."""
    N = np.repeat(np.geomspace(1e5, 1e7, 6), 4)
    D = np.tile(np.geomspace(1e6, 1e8, 4), 6)
    loss = scaling.predict(LAW, N, D) * np.exp(np.random.default_rng(seed).normal(0, noise, N.size))
    return N, D, loss


def test_fit_recovers_known_exponents_from_noisy_losses():
    fit = scaling.fit_law(*synthetic_runs())
    assert abs(fit["alpha"] - LAW["alpha"]) < 0.03 and abs(fit["beta"] - LAW["beta"]) < 0.03
    assert abs(fit["E"] - LAW["E"]) < 0.1
    optimal, truth = scaling.compute_optimal(fit, 1e18), scaling.compute_optimal(LAW, 1e18)
    assert abs(optimal["a"] - truth["a"]) < 0.02
    assert abs(math.log(optimal["tokens_per_param"] / truth["tokens_per_param"])) < math.log(1.5)


def test_fit_is_exact_without_noise():
    fit = scaling.fit_law(*synthetic_runs(noise=0.0))
    for key in ("alpha", "beta", "E"):
        assert fit[key] == pytest.approx(LAW[key], rel=1e-3)


def test_compute_optimal_is_the_minimum_of_the_law_at_fixed_compute():
    C = 1e19
    optimal = scaling.compute_optimal(scaling.PAPER, C)
    N = np.geomspace(1e6, 1e11, 20001)
    brute = N[np.argmin(scaling.predict(scaling.PAPER, N, C / (6 * N)))]
    assert optimal["N_opt"] == pytest.approx(brute, rel=2e-3)
    assert optimal["N_opt"] * optimal["D_opt"] * 6 == pytest.approx(C)
    # the paper's rounded Approach 3 law: N_opt ~ C^(beta / (alpha + beta)) = C^0.45
    assert optimal["a"] == pytest.approx(0.28 / 0.62)


# Approach 2 on synthetic IsoFLOP profiles: sizes from a fixed ladder (x1.58 apart), at each budget the 5 or 7
# nearest the law's optimum, NOT centred on it, as a real grid is laid out before the optimum is known
LADDER = np.geomspace(1e4, 1e9, 26)
BUDGETS = [1e15, 3e15, 1e16, 3e16, 1e17]


def isoflop_runs(sizes_per_budget, flops_per_token=lambda n: 6 * n, noise=0.0, seed=0):
    """(N, D, loss, C): every budget's sizes trained on D = C / flops_per_token(N) tokens, the loss the law
    predicts (times log-normal noise)."""
    N, C = [], []
    for budget in BUDGETS:
        n_opt = optimum_by_search(budget, flops_per_token)[0]
        nearest = int(np.abs(np.log(LADDER / n_opt)).argmin())
        first = nearest - sizes_per_budget // 2
        N += list(LADDER[first:first + sizes_per_budget])
        C += [budget] * sizes_per_budget
    N, C = np.array(N), np.array(C)
    D = C / flops_per_token(N)
    return N, D, scaling.predict(LAW, N, D) * np.exp(np.random.default_rng(seed).normal(0, noise, N.size)), C


def optimum_by_search(budget, flops_per_token):
    """(N_opt, D_opt) of LAW at a budget, by brute force over a dense grid of N: the truth for any cost model."""
    N = np.geomspace(1e3, 1e12, 200001)
    best = np.argmin(scaling.predict(LAW, N, budget / flops_per_token(N)))
    return N[best], budget / flops_per_token(N[best])


def test_isoflop_minima_recover_the_exponents_of_a_known_law():
    N, D, loss, C = isoflop_runs(5)
    minima, a, b = scaling.isoflop_minima(N, D, loss, C=C)
    truth = scaling.compute_optimal(LAW, 1e16)  # C = 6ND: a = beta / (alpha + beta), b = alpha / (alpha + beta)
    assert len(minima) == 5 and all(m["inside"] for m in minima)
    assert a == pytest.approx(truth["a"], abs=0.005) and b == pytest.approx(truth["b"], abs=0.005)
    for m in minima:  # a parabola through a profile that is not one: the vertex is off by under 2%
        assert m["N_opt"] == pytest.approx(scaling.compute_optimal(LAW, m["C"])["N_opt"], rel=0.02)


def test_isoflop_exponents_follow_the_flops_that_define_the_budget():
    # a model's own FLOPs per token count the output layer too: here 6N + 6 x 2e4 sqrt(N) (an embedding whose
    # width grows as sqrt(N)). The optimum moves, and a + b is no longer 1: which C one counts moves the exponents
    cost = lambda n: 6 * n + 6 * 2e4 * np.sqrt(n)
    N, D, loss, C = isoflop_runs(5, cost)
    _, a, b = scaling.isoflop_minima(N, D, loss, C=C)
    optima = np.log([optimum_by_search(c, cost) for c in BUDGETS])
    true_a, true_b = (np.polyfit(np.log(BUDGETS), optima[:, i], 1)[0] for i in (0, 1))
    assert a == pytest.approx(true_a, abs=0.01) and b == pytest.approx(true_b, abs=0.01)
    assert a + b > 1.1


def test_isoflop_exponents_from_noisy_profiles_with_their_interval():
    N, D, loss, C = isoflop_runs(7, noise=0.003)  # 0.3% noise on each loss
    _, a, b = scaling.isoflop_minima(N, D, loss, C=C)
    truth = scaling.compute_optimal(LAW, 1e16)
    assert a == pytest.approx(truth["a"], abs=0.02) and b == pytest.approx(truth["b"], abs=0.02)
    interval = scaling.isoflop_interval(N, D, loss, C)
    for key in ("a", "b"):
        low, high = interval[key]
        assert low <= truth[key] <= high and high - low < 0.1


def test_a_minimum_beyond_the_sizes_trained_is_reported_but_not_fitted():
    N, D, loss, C = isoflop_runs(5)
    at = C == BUDGETS[-1]
    N[at] = N[at] / 100  # the largest budget's sizes all far below its optimum: the profile only falls
    D = C / (6 * N)
    minima, a, _ = scaling.isoflop_minima(N, D, scaling.predict(LAW, N, D), C=C)
    last = [m for m in minima if m["C"] == BUDGETS[-1]]
    assert all(not m["inside"] for m in last)  # an extrapolated vertex, or none at all
    assert a == pytest.approx(scaling.compute_optimal(LAW, 1e16)["a"], abs=0.01)  # from the other four


def test_bootstrap_intervals_contain_the_truth():
    intervals = scaling.bootstrap(*synthetic_runs(), samples=8, keep=1, steps=100)
    for key in ("alpha", "beta"):
        low, high = intervals[key]
        assert low - 0.03 <= LAW[key] <= high + 0.03


def test_the_papers_rounded_constants_do_not_give_20_tokens_per_parameter():
    # scaling.py's docstring: the printed Approach 3 law gives ~93 at Chinchilla's budget (Besiroglu et al. 2024)
    chinchilla = scaling.compute_optimal(scaling.PAPER, 6 * 70e9 * 1.4e12)
    assert chinchilla["tokens_per_param"] == pytest.approx(93, abs=1)


def test_bootstrap_predicts_an_unseen_run_with_an_interval():
    N, D, loss = synthetic_runs()
    intervals = scaling.bootstrap(N, D, loss, samples=6, keep=1, steps=100, at=[(3e7, 1e8)])
    low, high = intervals["loss_at_0"]
    truth = float(scaling.predict(LAW, 3e7, 1e8))
    assert low - 0.02 * truth <= truth <= high + 0.02 * truth
