"""The summary's Method section: how every number in the report was made."""

from __future__ import annotations


def method_section(files: list[str]) -> list[str]:
    """How every number was made, and the files written."""
    lines: list[str] = []
    lines += [
        "## Method",
        "",
        "Trials store their best epoch's validation logits (trials without them get point "
        "estimates only, and the note says so), so every comparison is made on the same "
        "windows. Skill is the per-window BCE difference between a trial and a "
        "predictor (the base rate, a logistic regression, a gradient-boosted tree) on those "
        "windows, with a Newey–West standard error whose lag is at least the horizon and a tenth "
        "of the windows (overlapping windows are not independent; the effective sample says "
        "how many independent windows they are worth), and fixed-b p-values. AUC is tested "
        "against 0.5 with DeLong's standard error, inflated the same way. The base rate is "
        "the training positive rate when its predictor is given, else the validation split's "
        "own rate (the best constant in hindsight, a stricter bar).",
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
        "The final evaluation (`finscale evaluate`) retrains each study's top trials by "
        "validation value with several seeds (the first is the trial's own seed, which "
        "reproduces its search run) on the training windows with validation early stopping, and "
        "scores the test windows, which took no part in any choice. A budget's final model is "
        "the evaluated trial with the best mean validation BCE; its test BCE and AUC are the "
        "mean and standard deviation over seeds, and its seed-averaged prediction is paired "
        "against the base rate (the training positive rate) and the baselines on the test "
        "windows, with the same Newey–West test.",
        "",
        "Cautions: a trial whose best epoch was its last of all its epochs was still improving "
        "(more epochs would change it); a trial whose predicted probabilities spread less than "
        "0.005 across windows answers the same for every window; a budget that lost more than "
        "half its finished trials to pruning or failure was searched by the few that survived. "
        "The answer names each.",
        "",
        "Baselines, fitted on the study's own training windows (`finscale.train.baselines`): "
        "the base rate (the training positive rate, a constant), an L2 logistic regression and "
        "a histogram gradient-boosted tree on the last day's features and a few window "
        "aggregates (means of the last 5 and 20 days, last minus first).",
        "",
        "In the tables, a comparison reads: difference ± standard error (p₂: the two-sided "
        "p-value); the answer's sentences use one-sided p-values for better or worse.",
        "",
        "Files: " + ", ".join(f"`{f}`" for f in files) + ".",
        "",
    ]
    return lines
