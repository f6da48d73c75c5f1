"""`finscale plan`: what a design can detect, checked against the report's own test on simulated
studies, and what it costs, checked against a hand computation.

The simulated worlds are the plan's noise model made concrete: three budgets 0.6 decades apart,
450 windows; each run's loss on a window is a common part every run shares, its model's own
noise (SD 0.06; a trial's own, the seeds of a final model share theirs), autocorrelated as
labels that overlap over the horizon and cluster (a mix of an h-day moving sum and an AR(1)),
and each run's luck offset. The plan is given what it would measure on such windows: the lag
and Bartlett ratio the report's rule picks (the median over realizations) and the noise's whole
long-run variance. The report's `fit_scaling` then runs on each replication.

A law is a shift of each budget's losses and the fit is equivariant under it
(tests/unit/test_scaling_luck.py), so the power at a true slope of −D is read from null
replications: the share whose interval's upper end lies below D.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from finscale.errors import DataError
from finscale.model.grid import Arch
from finscale.plan.compute import GPU_PEAK_TFLOPS, Shape, forward_flops, hours
from finscale.plan.design import PlanOptions, plan_studies, reference_slope
from finscale.plan.pilot import own_window_sd, read_pilots
from finscale.plan.power import Design, WindowNoise, detectable, window_dependence
from finscale.plan.text import plan_json, plan_lines
from finscale.report.scaling import BudgetTrials, fit_scaling
from finscale.settings import Settings
from finscale.spec import load_studies
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "configs" / "experiments" / "validation.yaml"
N = 450
LOG10_SIZES = (math.log10(5e4), math.log10(2e5), math.log10(8e5))
SD = 0.06
REPS = 240
RESAMPLES = 300


@dataclass(frozen=True)
class World:
    """Noise: √(1 − κ) · (h-day moving sum) + √κ · AR(1) ρ, unit variance."""

    draws: str  # "trials" or "seeds"
    runs: int  # per budget
    luck: float
    horizon: int
    rho: float
    kappa: float

    def noise(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        h = self.horizon
        e = rng.normal(size=(rows, N + h - 1))
        overlap = np.lib.stride_tricks.sliding_window_view(e, h, axis=1).sum(axis=2) / math.sqrt(h)
        a = rng.normal(size=(rows, N)) * math.sqrt(1 - self.rho**2)
        a[:, 0] /= math.sqrt(1 - self.rho**2)  # stationary from the first window
        a = lfilter([1.0], [1.0, -self.rho], a, axis=1)
        return np.asarray(math.sqrt(1 - self.kappa) * overlap + math.sqrt(self.kappa) * a)

    @property
    def long_run(self) -> float:
        """The noise's whole long-run variance over its variance."""
        return (1 - self.kappa) * self.horizon + self.kappa * (1 + self.rho) / (1 - self.rho)

    def design(self) -> Design:
        """What the plan models for this world (its windows measured as on a dataset)."""
        rng = np.random.default_rng(1)
        found = [window_dependence(self.noise(rng, 1)[0], horizon=self.horizon) for _ in range(51)]
        lag = int(np.median([f[0] for f in found]))
        ratio = float(np.median([f[1] for f in found]))
        window = WindowNoise(N, lag, ratio, self.long_run, SD, "simulated")
        return Design(LOG10_SIZES, (self.runs,) * 3, self.draws, self.luck, window)  # type: ignore[arg-type]

    def budgets(self, rng: np.random.Generator) -> list[BudgetTrials]:
        """One study with no true scaling, as the report scores it."""
        common = 0.3 * self.noise(rng, 1)
        out = []
        for b, size in enumerate(LOG10_SIZES):
            rows = self.runs if self.draws == "trials" else 1
            own = SD * self.noise(rng, rows) * np.ones((self.runs, 1))
            loss = 0.4 + common + own + self.luck * rng.normal(size=(self.runs, 1))
            out.append(BudgetTrials(f"b{b}", loss[np.argsort(loss.mean(axis=1))],
                                    np.full(self.runs, 10**size)))  # fmt: skip
        return out


def simulate(world: World, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The report's 95 % interval of the slope in `REPS` null replications."""
    rng = np.random.default_rng(seed)
    lows, highs = [], []
    with threadpool_limits(limits=1):  # small matrices: threads only contend
        for r in range(REPS):
            fit = fit_scaling(world.budgets(rng), n_resamples=RESAMPLES, seed=r,
                              min_block=world.horizon, draws=world.draws,  # type: ignore[arg-type]
                              with_exponent=False)  # fmt: skip
            lows.append(fit.slope.low)
            highs.append(fit.slope.high)
    return np.array(lows), np.array(highs)


# The validation world: 8 trials per budget (sample-scaling's), clustered labels at horizon 1
# (the report's blocks about n/3, as on the S&P 500 sample). The test world: one final model of
# 3 seeds per budget.
WORLDS = {
    "validation": (World("trials", 8, 0.005, 1, 0.9, 0.3), 7),
    "test": (World("seeds", 3, 0.0025, 1, 0.6, 0.5), 8),
}


# Run time (one core of a shared 2-core machine): about 3 s per world, 240 replications of
# 300 resamples. Measured: validation power 82 % (85 % with another seed), no-law detections
# 0 %; test power 75 % (72 %), no-law detections 4.2 % (6.7 %). On test the report's interval
# varies from one experiment to the next (its block follows the data) more than the plan's
# model, which reads the median experiment: the power at the stated slope is a little below 80 %.
@pytest.mark.slow
@pytest.mark.parametrize("split", WORLDS)
def test_a_slope_the_size_the_plan_states_is_found_80_percent_of_the_time(split: str) -> None:
    world, seed = WORLDS[split]
    stated = detectable(world.design())
    low, high = simulate(world, seed=seed)
    found = float(np.mean(high < stated))  # a true slope of −stated: "bigger is better"
    wrong = float(np.mean(low > 0) + np.mean(high < 0))  # no law: any verdict is wrong
    assert 0.70 <= found <= 0.90, (stated, found)
    assert wrong <= 0.065


def test_the_labels_dependence_is_read_by_the_reports_rule() -> None:
    # an AR(1) of 0.5: long-run variance 3 × the variance; the Bartlett ratio at the chosen lag
    # is below it, the AR(1) tail's implied ratio near it
    rng = np.random.default_rng(3)
    x = lfilter([1.0], [1.0, -0.5], rng.normal(size=20_000))
    lag, ratio, long_run = window_dependence(x, horizon=1)
    assert lag >= 1 and 1 < ratio <= long_run
    assert long_run == pytest.approx(3.0, rel=0.1)


def test_a_design_detects_more_with_more_windows_trials_and_decades() -> None:
    window = WindowNoise(450, 50, 2.0, 3.0, SD, "given")
    base = Design(LOG10_SIZES, (8, 8, 8), "trials", 0.005, window)
    wider = Design((4.0, 5.0, 6.0), (8, 8, 8), "trials", 0.005, window)
    longer = Design(LOG10_SIZES, (8, 8, 8), "trials", 0.005,
                    WindowNoise(1800, 50, 2.0, 3.0, SD, "given"))  # fmt: skip
    assert detectable(wider) < detectable(base)
    assert detectable(longer) < detectable(base)
    assert detectable(base) == detectable(base)  # seeded: the same every time


def test_flops_and_gpu_hours_match_a_hand_computation(tmp_path: Path) -> None:
    # given a spec whose 50K budget holds one architecture, d48-l2-h2-f2, on assumed windows
    text = VALIDATION.read_text()
    text = text.replace("d_model: [16, 24, 32, 48, 64]", "d_model: [48]")
    text = text.replace("n_layers: [1, 2, 3, 4]", "n_layers: [2]")
    text = text.replace("n_heads: [2, 4]", "n_heads: [2]").replace(
        "d_ff_ratio: [2, 4]", "d_ff_ratio: [2]"
    )
    spec = tmp_path / "tiny.yaml"
    spec.write_text(text)
    studies = load_studies(spec)
    options = PlanOptions(cpu_gflops=100.0, cpu_measured=False, windows=(3000, 400, 300),
                          gpu="A100", mfu=0.5, top_k=1, seeds=2)  # fmt: skip
    # when it is planned
    plan = plan_studies(str(spec), studies, data_dir=tmp_path / "empty", options=options)
    # then by hand: 25 features, 11 patches of 10 days, D 48, F 96, 2 layers
    per_token = 10 * 25 * 48 + 2 * (4 * 48 * 48 + 2 * 48 * 96)  # 12,000 + 36,864
    forward = 2 * (11 * per_token + 11 * 48) + 4 * 2 * 11 * 11 * 48  # 1,076,064 + 46,464
    assert forward_flops(Arch(48, 2, 2, 96), Shape(25, 60, 10, 5)) == forward == 1_122_528
    epochs = 3.5  # the mean of the spec's choices [3, 4]
    run = epochs * (3000 * 3 * forward + 400 * forward)
    total = 3 * run + 1 * 2 * (run + 300 * forward)  # 3 trials, then top-1 × 2 seeds
    (study,) = plan.studies
    assert study.n_archs == 1
    assert (study.cost.steps_per_epoch, study.cost.tokens_per_step) == (12, 11 * 256)
    assert study.cost.total == pytest.approx(total, rel=1e-12)
    assert study.gpu_hours == pytest.approx(total / (312e12 * 0.5) / 3600, rel=1e-12)
    assert study.cpu_hours == pytest.approx(total / (100e9 * 0.5) / 3600, rel=1e-12)
    assert hours(3600 * 312e12 * 0.5, peak_flops=GPU_PEAK_TFLOPS["A100"] * 1e12, mfu=0.5) == 1.0


def test_the_plan_of_the_validation_spec_fits_80_columns(data_dir: Path) -> None:
    plan = plan_studies(str(VALIDATION), load_studies(VALIDATION), data_dir=data_dir,
                        options=PlanOptions(cpu_gflops=50.0, cpu_measured=False))  # fmt: skip
    lines = plan_lines(plan)
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split()[:4] == ["study", "params", "archs", "trials"]
    assert any(line.startswith("validation-50k-h1") for line in lines)
    assert "one budget, no slope to detect" in "\n".join(lines)
    (study,) = plan.studies
    # GSPC's windows: training before 2015, validation 2015-2016, test from 2017
    assert (study.cost.val_windows, study.cost.test_windows) == (444, 442)
    json.dumps(plan_json(plan))


def test_a_scaling_plan_states_its_verdict_per_split(data_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(VALIDATION.read_text().replace("budgets: [50K]", "budgets: [10K, 50K]"))
    plan = plan_studies(str(spec), load_studies(spec), data_dir=data_dir,
                        options=PlanOptions(cpu_gflops=50.0, cpu_measured=False))  # fmt: skip
    (h,) = plan.horizons
    assert h.validation is not None and h.test is not None
    assert 0 < h.validation.detectable < 0.5 and 0 < h.test.detectable < 0.5
    assert h.validation.window.lag >= 1 and h.validation.window.effective_n <= 444
    assert h.sentence.startswith(
        f"horizon 1: this design detects a slope of ≥ {h.validation.detectable:.4f} BCE per "
        f"decade on validation and ≥ {h.test.detectable:.4f} on test with 80 % power"
    )
    assert f"measured slope was {reference_slope():+.4f}" in h.sentence
    assert max(len(line) for line in plan_lines(plan)) <= 80


def test_the_reference_runs_slope_is_the_phase6a_budget_means() -> None:
    # 2M 0.3067, 20M 0.3377, 200M 0.3574, 2B 0.3716 (reference §8.1): least squares per decade
    assert reference_slope() == pytest.approx(0.1072 / 5, abs=1e-6)


def test_a_dataset_not_built_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    studies = load_studies(VALIDATION)
    options = PlanOptions(cpu_gflops=50.0, cpu_measured=False)
    with pytest.raises(DataError, match=r"GSPC\.dataset\.a25.*build it first, or pass --windows"):
        plan_studies(str(VALIDATION), studies, data_dir=tmp_path, options=options)


def test_assumed_windows_stand_in_for_a_dataset_not_built(tmp_path: Path) -> None:
    options = PlanOptions(cpu_gflops=50.0, cpu_measured=False, windows=(3000, 500, 400))
    plan = plan_studies(str(VALIDATION), load_studies(VALIDATION), data_dir=tmp_path,
                        options=options)  # fmt: skip
    assert "assumed (--windows 3000,500,400" in plan.horizons[0].windows_from
    assert plan.studies[0].cost.train_windows == 3000


def test_the_cli_prints_the_plan_and_json(
    data_dir: Path, env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(data_dir))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    code, out, _ = run_cli(["plan", str(VALIDATION), "--cpu-gflops", "50"], capsys)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    assert "H100 at 989 TFLOPS" in out
    code, out, _ = run_cli(["plan", str(VALIDATION), "--cpu-gflops", "50", "--json",
                            "--gpu", "L4"], capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["devices"]["gpu_peak_tflops"] == 121.0
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path / "nothing"))
    code, _, err = run_cli(["plan", str(VALIDATION), "--cpu-gflops", "50"], capsys)
    assert code == 2 and "--windows" in err


def test_own_window_noise_is_read_without_the_shared_noise_and_the_luck() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(1, 2000))
    studies = [shared + 0.3 * rng.normal(size=(k, 1)) + 0.05 * rng.normal(size=(k, 2000))
               for k in (2, 5, 8)]  # fmt: skip
    assert own_window_sd(studies) == pytest.approx(0.05, rel=0.02)


def test_a_pilot_run_in_the_storage_gives_the_trials_spread(data_dir: Path, tmp_path: Path) -> None:
    # given the golden storage: two budgets of six trials each (a pilot of its spec)
    golden = ROOT / "tests" / "fixtures" / "golden"
    shutil.copy(golden / "storage.db", tmp_path / "pilot.db")
    studies = load_studies(golden / "spec.yaml")
    settings = Settings(storage_url=f"sqlite:///{tmp_path / 'pilot.db'}")
    # when the plan reads it
    pilots = read_pilots(settings, studies)
    plan = plan_studies("golden", studies, data_dir=data_dir, pilots=pilots,
                        options=PlanOptions(cpu_gflops=50.0, cpu_measured=False))  # fmt: skip
    # then the trials' spread is measured there, less the window noise the model gives them
    assert pilots[1].df == 10 and pilots[1].studies == 2
    assert pilots[1].sd == pytest.approx(0.00439, abs=1e-5)
    assert pilots[1].window_sd is not None and 0 < pilots[1].window_sd < 0.2
    assert plan.horizons[0].window_sd == pilots[1].window_sd
    assert plan.horizons[0].window_sd_from.startswith("pilot:")
    validation = plan.horizons[0].validation
    assert validation is not None and validation.luck_from.startswith("pilot: 2 studies")
    assert validation.window.sd == pilots[1].window_sd
    # and the windows' dependence is the pilot's: the report's lag on its best trials
    assert validation.window.source == "the pilot's trials"
    assert pilots[1].dependence is not None and validation.window.lag == pilots[1].dependence[0]
    run_se = validation.window.run_se
    assert validation.luck == pytest.approx(math.sqrt(max(pilots[1].sd ** 2 - run_se**2, 0.0)))
    assert read_pilots(Settings(storage_url=f"sqlite:///{tmp_path / 'none.db'}"), studies) == {}


def test_the_cli_knows_the_cards_the_plan_knows() -> None:
    from finscale.cli.choices import Gpu

    assert [g.value for g in Gpu] == list(GPU_PEAK_TFLOPS)


def test_planning_imports_no_torch(data_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from finscale.spec import load_studies; "
        "from finscale.plan import PlanOptions, plan_studies, plan_lines; "
        f"s = load_studies(Path({str(VALIDATION)!r})); "
        f"plan_lines(plan_studies('v', s, data_dir=Path({str(data_dir)!r}), "
        "options=PlanOptions(cpu_gflops=1.0))); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
