"""Privacy figures on the audited default timeline (``scenario=privacy_audit``: the five sites and
four stages of ``sequential_sites``, a fifth of the patients marked, 160 test patients per site):

- no DP vs DP-SGD at a target epsilon of about 8 and 2 (delta 1e-5), over seeds: the primary
  metric (memorizability and generalizability after the last stage), each site's epsilon, the
  membership-inference AUC of both attacks, TPR at 1 % FPR, and marked vs unmarked patients;
- the time DP costs: each seed's runs go one after the other, and the ratio of DP to no-DP wall
  time is taken per seed;
- our epsilon against Opacus's RDP accountant called directly with the same noise multiplier
  (the one each site reported before training), sampling rate and number of steps.

    python -m benchmarks.privacy                          # seeds 0 1 2
    python -m benchmarks.privacy size=smoke --seeds 0
"""

import json

import numpy as np
from opacus.accountants import RDPAccountant

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from simulations.formatting import MISSING, fmt, mean_std, table_header, table_row

SETTINGS = {
    "no DP": ["privacy=off"],
    "DP, target epsilon 8": ["privacy=dp", "privacy.target_epsilon=8"],
    "DP, target epsilon 2": ["privacy=dp", "privacy.target_epsilon=2"],
}
OUTPUTS = ("matrix.json", "summary.json", "privacy_audit.json", "metrics.jsonl")


def _dp(run: dict) -> bool:
    return run["privacy_audit.json"]["delta"] is not None


def _site_values(run: dict, key: str, attacks: tuple[str, ...] = ("loss", "reference")) -> list[float]:
    """Per audited site, the largest of ``<attack>-<key>`` over ``attacks`` (``""``: ``key`` itself)."""
    values = []
    for metrics in run["privacy_audit.json"]["sites"].values():
        found = [metrics[f"{a}-{key}" if a else key] for a in attacks if (f"{a}-{key}" if a else key) in metrics]
        if found:
            values.append(max(found))
    return values


def epsilon_check(run: dict, overrides: list[str]) -> float:
    """Largest |our epsilon - Opacus's accountant called directly| over the run's sites."""
    config = compose_config(["scenario=privacy_audit", *overrides])
    task, delta = config["task"], config["privacy"]["delta"]
    events = [json.loads(line) for line in run["metrics.jsonl"].splitlines()]
    noise = {e["site"]: e["metrics"]["noise-multiplier"] for e in events if e["event"] == "data"}
    steps = {}
    for event in events:
        if event["event"] == "train":
            steps[event["site"]] = steps.get(event["site"], 0) + task["local_steps"]
    gaps = []
    for site, metrics in run["privacy_audit.json"]["sites"].items():
        accountant = RDPAccountant()
        accountant.history = [(noise[site], task["batch_size"] / task["n_train"], steps[site])]
        gaps.append(abs(metrics["epsilon"] - accountant.get_epsilon(delta)))
    return max(gaps)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    args = parser.parse_args()
    runs = {name: [] for name in SETTINGS}
    for seed in args.seeds:
        for name, setting in SETTINGS.items():
            overrides = [*setting, f"seed={seed}", *args.overrides]
            seconds, outputs = simulate(["scenario=privacy_audit", *overrides], OUTPUTS)
            outputs["seconds"] = seconds
            outputs["epsilon gap"] = epsilon_check(outputs, overrides) if _dp(outputs) else None
            runs[name].append(outputs)
            print(f"  seed {seed} {name}: {seconds:.0f} s", flush=True)

    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}; mean ± std over seeds of "
          "each run's mean over the four audited sites")
    print()
    columns = {
        "memorizability": lambda r: r["summary.json"]["memorizability"],
        "generalizability": lambda r: r["summary.json"]["generalizability"],
        "site epsilon (max)": lambda r: max(_site_values(r, "epsilon", attacks=("",))) if _dp(r) else None,
        "loss AUC": lambda r: np.mean(_site_values(r, "auc", attacks=("loss",))),
        "reference AUC": lambda r: np.mean(_site_values(r, "auc", attacks=("reference",))),
        "TPR at 1% FPR (best attack)": lambda r: np.mean(_site_values(r, "tpr-at-1pct-fpr")),
        "marked AUC (best attack)": lambda r: np.mean(_site_values(r, "marked-auc")),
        "unmarked AUC (best attack)": lambda r: np.mean(_site_values(r, "unmarked-auc")),
    }
    print(*table_header(["setting", *columns]), sep="\n")
    for name, results in runs.items():
        print(table_row([name, *(mean_std([f(r) for r in results]) for f in columns.values())]))
    print()
    print(*table_header(("setting", "wall s, median", "ratio to no DP, median over seeds",
                         "max abs epsilon gap to Opacus")), sep="\n")
    for name, results in runs.items():
        ratios = [r["seconds"] / base["seconds"] for r, base in zip(results, runs["no DP"])]
        gaps = [r["epsilon gap"] for r in results if r["epsilon gap"] is not None]
        print(table_row((name, fmt(median([r["seconds"] for r in results]), 1), fmt(median(ratios), 2),
                         f"{max(gaps):.1e}" if gaps else MISSING)))


if __name__ == "__main__":
    main()
