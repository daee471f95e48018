"""scaling.py: the Chinchilla fit recovers a known law from synthetic losses; the compute-optimal
formulas agree with a brute-force search; IsoFLOP minima give the exponent the law implies."""
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


def test_isoflop_minima_give_the_exponent_of_the_law():
    budgets = [1e15, 1e16, 1e17]
    # 9 sizes per budget, a decade either side of the optimum (a real study centres its sizes the same way)
    N = np.concatenate([np.geomspace(0.1, 10, 9) * scaling.compute_optimal(LAW, c)["N_opt"] for c in budgets])
    C = np.repeat(budgets, 9)
    D = C / (6 * N)
    minima, a, b = scaling.isoflop_minima(N, D, scaling.predict(LAW, N, D), C=C)
    assert len(minima) == 3
    truth = scaling.compute_optimal(LAW, 1e16)
    assert a == pytest.approx(truth["a"], abs=0.05) and a + b == pytest.approx(1.0, abs=1e-6)


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
