"""Debiasing figures: bias ratio x method, centralized and federated, over seeds.

- centralized: ``scenario=centralized`` (one site, one stage), ``task.arrangement=source_biased``
  (two sources inside the site, label = source for a ``bias_ratio`` share of training images);
- federated: ``scenario=federated_sources`` (four sites training together with FedAvg),
  ``task.arrangement=federated`` (each site one source, with its own label skew).

Every number is federation-wide (pooled over the sites' test splits from their score
histograms) after the last stage: AUC on bias-aligned and bias-conflicting test images, their
mean (balanced), and the accuracy of PBBL's pseudo bias labels on the training images.

    python -m benchmarks.debiasing                       # 3 ratios x 3 methods x 2 settings x 3 seeds
    python -m benchmarks.debiasing size=smoke --seeds 0 --ratios 0.9
    python -m benchmarks.debiasing --methods pbbl --settings federated task.pseudo_threshold=site
"""

from benchmarks.common import compose_config, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from simulations.formatting import mean_std, table_header, table_row

SETTINGS = {
    "centralized": ["scenario=centralized", "task.arrangement=source_biased"],
    "federated": ["scenario=federated_sources", "task.arrangement=federated"],
}
METHODS = ("erm", "pbbl", "bias_balanced_oracle")
COLUMNS = ("aligned_auc", "conflicting_auc", "balanced_auc", "pseudo_label_accuracy")


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    recorder = Recorder.from_args(args, "debiasing", "benchmarks.debiasing")

    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}; mean ± std over seeds")
    print()
    print(*table_header(["setting", "bias ratio", "method", *COLUMNS]), sep="\n")
    for setting in args.settings:
        for ratio in args.ratios:
            for method in args.methods:
                pooled = []
                for seed in args.seeds:
                    overrides = ["task=debiasing", *SETTINGS[setting], f"task.method={method}",
                                 f"task.bias_ratio={ratio}", f"seed={seed}", *args.overrides]
                    _, matrix = simulate(overrides)
                    pooled.append(matrix["pooled"][-1])
                    recorder.record(compose_config(overrides), {c: pooled[-1].get(c) for c in COLUMNS}, seed=seed,
                                    method=method, variant=variant_of([f"task.bias_ratio={ratio}", *args.overrides]),
                                    split_or_site="federation")
                cells = [mean_std(p.get(c) for p in pooled) for c in COLUMNS]
                print(table_row([setting, ratio, method, *cells]), flush=True)


if __name__ == "__main__":
    main()
