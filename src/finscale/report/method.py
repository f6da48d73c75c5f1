"""The summary's Method section: how every number in the report was made."""

from __future__ import annotations


def method_section(files: list[str]) -> list[str]:
    """How every number was made, and the files written."""
    # Long because it is prose: the page's method text, one paragraph per test, read top to
    # bottom as the summary prints it; split, one page would be scattered over functions.
    lines: list[str] = []
    lines += [
        "## Method",
        "",
        "Trials store their best epoch's validation logits (trials without them get point "
        "estimates only, and the note says so), so every comparison is made on the same "
        "windows. Skill is the per-window BCE difference between a trial and a "
        "predictor (the reference, a logistic regression, a gradient-boosted tree) on those "
        "windows, with a Newey–West standard error whose lag grows with the losses' own "
        "persistence (2.5·√(|B|·n), Andrews' |B| measured on the series; at least the horizon, "
        "at most a third of the windows: overlapping windows are not independent, and the "
        "effective sample says how many independent windows they are worth), and fixed-b "
        "p-values. AUC is tested "
        "against 0.5 with DeLong's standard error, inflated the same way; no label rate moves "
        "it, so it stands beside every BCE verdict.",
        "",
        "The reference of a split is a constant at the positive rate of every label a model may "
        "use before it: the training labels for validation; the training and validation labels "
        "for test, refit or not (`finscale.train.reference`, which `finscale train` prints "
        "too). It is computed from each study's stored windows (the training count and rate, "
        "the validation labels); a study that stored no training rate is judged against the "
        "split's own rate instead, and the answer says so. The floor is the BCE of a constant "
        "at the split's own rate: the best any constant can do there, unattainable without the "
        "split's labels. When the split's rate differs from the reference rate beyond the noise "
        "(its labels minus the reference rate, the same Newey–West test, two-sided 5 %), a "
        "model can beat the reference by predicting the shift, not by skill: a constant nudged "
        "slightly from the reference toward the split's rate beats it in the paired BCE test "
        "whenever this test finds the shift, and no constant beats it when this test does not. "
        "On such a split a predictor is called better than the "
        "reference only if it also beats the floor's constant; otherwise its lower BCE is "
        "reported as one the shift can explain.",
        "",
        "Each budget's point is the expected best validation BCE of m trials drawn at random "
        "from its finished trials, with the same m for every budget, so that a budget searched "
        "longer is not favoured; pruned and diverged trials count as losers, failures of the "
        "infrastructure are left out. The verdict is the slope of those points per decade of "
        "parameters: bigger is better only if its 95% interval lies below zero. The interval "
        "comes from a circular block bootstrap over validation windows, the same resampled "
        "windows for every budget and trial (the noise the budgets share cancels as it does in "
        "the data), with each budget's best redone on every resample. With three budgets or "
        "more, L = E + A·N^(−α) with E between 0 and the lowest point describes what scale "
        "buys above a floor; BCE has an entropy floor, so a log-log slope of raw BCE would not.",
        "",
        "What the same m does not equalize: the number of draws, not how they were guided. A "
        "TPE sampler learns from the results before each draw, so m trials drawn from a search "
        "of N trials are not m random draws, and their best is not the best of m random "
        "configurations: a budget searched longer keeps the advantage of better-guided draws "
        "(a random sampler would remove it).",
        "",
        "The final evaluation (`finscale evaluate`) retrains each study's top trials by "
        "validation value with several seeds (the first is the trial's own seed, which "
        "reproduces its search run) on the training windows with validation early stopping, and "
        "scores the test windows, which took no part in any choice. A budget's final model is "
        "the evaluated trial with the best mean validation BCE; its test BCE is the mean over "
        "its seeds (shown with their range with fewer than 3 seeds, else ± their standard "
        "deviation). Its loss on a test window is the mean over seeds of each run's loss on "
        "that window (what one trained run gets on average, not the loss of the seed-averaged "
        "prediction), and those per-window losses are paired against the reference (the rate "
        "of the training and validation labels), the floor and the baselines on the test "
        "windows with the same Newey–West test. Its AUC is that of the seed-averaged logits, "
        "the one tested against 0.5, with the seeds' own AUCs beside it.",
        "",
        "Cautions: a trial whose best epoch was its last of all its epochs was still improving "
        "(more epochs would change it); a trial whose predicted probabilities spread less than "
        "0.005 across windows answers the same for every window; a budget that lost more than "
        "half its finished trials to pruning or failure was searched by the few that survived. "
        "The answer names each.",
        "",
        "Baselines, fitted on the study's own training windows (`finscale.train.baselines`): "
        "an L2 logistic regression and a histogram gradient-boosted tree on the last day's "
        "features and a few window aggregates (means of the last 5 and 20 days, last minus "
        "first). The study also stores a constant at the training rate; the report uses it "
        "only for that rate (on test it would ignore the validation labels a model may use).",
        "",
        "In the tables, a comparison reads: difference ± standard error (p₂: the two-sided "
        "p-value); the verdicts and the answer's sentences use one-sided p-values at 2.5 % for "
        "better or worse, and \"shift\" for a BCE below the reference's but not the floor's on "
        "a split whose rate moved.",
        "",
        "Files: " + ", ".join(f"`{f}`" for f in files) + ".",
        "",
    ]
    return lines
