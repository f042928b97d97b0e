"""Privacy figures on the audited default timeline (``scenario=privacy_audit``: the five sites and
four stages of ``sequential_sites``, a fifth of the patients marked, 160 test patients per site):

- no DP vs DP-SGD at a target epsilon of about 8 and 2 (delta 1e-5; ``--settings`` picks), over
  seeds: the primary metric (memorizability and generalizability after the last stage), each
  site's epsilon, the membership-inference AUC of each attack that ran (``lira`` with
  ``scenario.audit.attack=lira``), TPR at 1 % FPR, and marked vs unmarked patients;
- the time DP costs: each seed's runs go one after the other, and the ratio of DP to no-DP wall
  time is taken per seed;
- our epsilon against Opacus's RDP accountant called directly with the same noise multiplier
  (the one each site reported before training), sampling rate and number of steps;
- per attack that ran, over every audited site of every seed: the AUC with DeLong's 95 %
  interval and the TPR at 1 % and 0.1 % FPR with Clopper–Pearson's.

    python -m benchmarks.privacy                          # seeds 0 1 2
    python -m benchmarks.privacy size=smoke --seeds 0
    python -m benchmarks.privacy scenario.audit.attack=lira scenario.audit.reference_models=4 --settings no-dp dp-8
"""

import json
from collections.abc import Callable

import numpy as np
from opacus.accountants import RDPAccountant
from scipy import stats

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from server.records import AuditRecord
from server.run_log import Event
from simulations.formatting import MISSING, fmt, mean_std, table_header, table_row
from sites.intervals import CONFIDENCE, clopper_pearson
from sites.protocol import AUDIT_ATTACKS, LOW_FPRS, AuditReply

# Each setting's name on the command line (--settings), its label in the tables, its overrides.
SETTINGS = {
    "no-dp": ("no DP", ["privacy=off"]),
    "dp-8": ("DP, target epsilon 8", ["privacy=dp", "privacy.target_epsilon=8"]),
    "dp-2": ("DP, target epsilon 2", ["privacy=dp", "privacy.target_epsilon=2"]),
}
AUDIT = "privacy_audit.json"
OUTPUTS = ("matrix.json", "summary.json", AUDIT, "metrics.jsonl")


def _dp(run: dict) -> bool:
    return run[AUDIT].delta is not None


def _site_values(run: dict, figures: Callable[[AuditReply], list[float]]) -> list[float]:
    """Per audited site, the largest of ``figures(reply)`` (a site with none is left out)."""
    return [max(found) for audited in run[AUDIT].sites.values() if (found := figures(audited.reply))]


def _auc(attack: str) -> Callable[[AuditReply], list[float]]:
    return lambda reply: [reply.attacks[attack].overall.auc.value] if attack in reply.attacks else []


def _best_tpr(reply: AuditReply) -> list[float]:
    return [result.overall.tpr["1pct"].value for result in reply.attacks.values()]


def _group_auc(group: str) -> Callable[[AuditReply], list[float]]:
    return lambda reply: [summary.auc.value for result in reply.attacks.values()
                          if (summary := result.marked if group == "marked" else result.unmarked) is not None]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def epsilon_check(run: dict, overrides: list[str]) -> float:
    """Largest |our epsilon - Opacus's accountant called directly| over the run's sites."""
    config = compose_config(["scenario=privacy_audit", *overrides])
    task, delta = config["task"], config["privacy"]["delta"]
    events = [json.loads(line) for line in run["metrics.jsonl"].splitlines()]
    noise = {e["site"]: e["metrics"]["noise-multiplier"] for e in events if e["event"] == Event.DATA}
    steps = {}
    for event in events:
        if event["event"] == Event.TRAIN:
            steps[event["site"]] = steps.get(event["site"], 0) + task["local_steps"]
    gaps = []
    for site, audited in run[AUDIT].sites.items():
        accountant = RDPAccountant()
        accountant.history = [(noise[site], task["batch_size"] / task["n_train"], steps[site])]
        gaps.append(abs(audited.reply.epsilon - accountant.get_epsilon(delta)))
    return max(gaps)


def attack_cells(runs: list[dict], attack: str) -> list[str] | None:
    """``attack``'s AUC and TPR at the audit's low FPRs over every audited site of ``runs``, each
    with its 95 % interval (``None`` if the attack did not run). The sites' audits are
    independent: the mean AUC's variance is the sum of the sites' DeLong variances (read off
    their intervals) over the count squared; the TPR pools the members found at each site's own
    threshold, whose Clopper–Pearson interval is conservative for rates that differ by site."""
    audits = [audited.reply for run in runs for audited in run[AUDIT].sites.values()]
    if attack not in audits[0].attacks:
        return None
    z = stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    summaries = [(reply.attacks[attack].overall, reply.n_members) for reply in audits]
    auc = np.mean([summary.auc.value for summary, _ in summaries])
    half = z * np.sqrt(sum(((summary.auc.high - summary.auc.low) / (2 * z)) ** 2
                           for summary, _ in summaries)) / len(audits)
    cells = [f"{auc:.3f} ({auc - half:.3f}–{auc + half:.3f})"]
    members = sum(n for _, n in summaries)
    for fpr in LOW_FPRS:
        found = sum(round(summary.tpr[fpr].value * n) for summary, n in summaries)
        low, high = clopper_pearson(found, members)
        cells.append(f"{found / members:.3f} ({low:.3f}–{high:.3f})")
    return cells


# The summary table's columns, each from one run's outputs.
COLUMNS = {
    "memorizability": lambda r: r["summary.json"]["memorizability"],
    "generalizability": lambda r: r["summary.json"]["generalizability"],
    "site epsilon (max)": lambda r: max(_site_values(r, lambda reply: [reply.epsilon])) if _dp(r) else None,
    **{f"{attack} AUC": lambda r, a=attack: _mean(_site_values(r, _auc(a))) for attack in AUDIT_ATTACKS},
    "TPR at 1% FPR (best attack)": lambda r: np.mean(_site_values(r, _best_tpr)),
    "marked AUC (best attack)": lambda r: np.mean(_site_values(r, _group_auc("marked"))),
    "unmarked AUC (best attack)": lambda r: np.mean(_site_values(r, _group_auc("unmarked"))),
}
# Each audited site's figures that go to the results file, per attack (``<attack>-<key>``).
SITE_KEYS = ("auc", "auc-ci-low", "auc-ci-high", *(f"tpr-at-{fpr}-fpr" for fpr in LOW_FPRS))


def record(recorder: Recorder, config: dict, run: dict, seed: int, setting: str, extra: list[str]) -> None:
    """One run's figures to the results file: the summary table's columns, wall time and epsilon
    gap (``split_or_site`` ``audited sites``: means over them), and each audited site's attack figures."""
    columns = {"seed": seed, "method": setting, "variant": variant_of(extra)}
    summary = {name: f(run) for name, f in COLUMNS.items()}
    recorder.record(config, {**summary, "wall_s": run["seconds"], "epsilon gap": run["epsilon gap"]},
                    split_or_site="audited sites", **columns)
    for site, audited in run[AUDIT].sites.items():
        metrics = dict(audited.reply.to_record())
        recorder.record(config, {key: metrics[key] for key in ("n-members", "n-non-members")}
                        | {f"{a}-{k}": metrics.get(f"{a}-{k}") for a in AUDIT_ATTACKS for k in SITE_KEYS},
                        split_or_site=site, **columns)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    settings = {SETTINGS[key][0]: SETTINGS[key][1] for key in args.settings}
    runs = {name: [] for name in settings}
    recorder = Recorder.from_args(args, "privacy", "benchmarks.privacy")
    for seed in args.seeds:
        for key in dict.fromkeys(args.settings):
            name = SETTINGS[key][0]
            overrides = [*settings[name], f"seed={seed}", *args.overrides]
            seconds, outputs = simulate(["scenario=privacy_audit", *overrides], OUTPUTS)
            outputs[AUDIT] = AuditRecord.from_dict(outputs[AUDIT])
            outputs["seconds"] = seconds
            outputs["epsilon gap"] = epsilon_check(outputs, overrides) if _dp(outputs) else None
            runs[name].append(outputs)
            record(recorder, compose_config(["scenario=privacy_audit", *overrides]), outputs, seed, key,
                   args.overrides)
            print(f"  seed {seed} {name}: {seconds:.0f} s", flush=True)

    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}; mean ± std over seeds of "
          "each run's mean over the four audited sites")
    print()
    print(*table_header(["setting", *COLUMNS]), sep="\n")
    for name, results in runs.items():
        print(table_row([name, *(mean_std([f(r) for r in results]) for f in COLUMNS.values())]))
    print()
    print(*table_header(("setting", "wall s, median", "ratio to no DP, median over seeds",
                         "max abs epsilon gap to Opacus")), sep="\n")
    for name, results in runs.items():
        ratios = [r["seconds"] / base["seconds"] for r, base in zip(results, runs.get(SETTINGS["no-dp"][0], []))]
        gaps = [r["epsilon gap"] for r in results if r["epsilon gap"] is not None]
        print(table_row((name, fmt(median([r["seconds"] for r in results]), 1),
                         fmt(median(ratios), 2) if ratios else MISSING, f"{max(gaps):.1e}" if gaps else MISSING)))
    print()
    non_members = sorted({audited.reply.n_non_members for results in runs.values() for r in results
                          for audited in r[AUDIT].sites.values()})
    print(f"each attack over every audited site of every seed, {CONFIDENCE:.0%} intervals; non-members per site "
          f"{non_members}: below 1 / that FPR only thresholds without a false alarm count")
    print()
    print(*table_header(("setting", "attack", "AUC", *(f"TPR at {fpr.replace('pct', ' %')} FPR" for fpr in LOW_FPRS))),
          sep="\n")
    for name, results in runs.items():
        for attack in AUDIT_ATTACKS:
            cells = attack_cells(results, attack)
            if cells is not None:
                print(table_row((name, attack, *cells)))


if __name__ == "__main__":
    main()
