"""The generated tables of the docs: which results rows each shows, and how.

A table reads one results file (``area``); each of its cells filters the file's rows by the
table's, the row's and the column's ``where`` (column -> value) and by the column's metrics.
To show a new measurement, record it under a new ``--study`` and point the table's ``where`` at
it; ``python -m benchmarks.render_docs`` then rewrites the docs.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of a generated table.

    Parameters
    ----------
    header
        Its name in the table.
    metrics
        The metrics shown in each cell, joined by ``template`` (default ``" / "``).
    how
        Which figure of the runs (:func:`benchmarks.render_docs.figure`).
    spec
        How numbers print (:func:`benchmarks.render_docs._number`).
    where
        Filters of this column's rows, on top of the table's and the row's.
    template
        ``str.format`` template of the cell, one field per metric.
    """

    header: str
    metrics: tuple[str, ...]
    how: str = "mean_std"
    spec: str = ".3f"
    where: dict[str, str] = field(default_factory=dict)
    template: str = ""


@dataclass(frozen=True)
class Row:
    """One row: its first cells and the filters of its figures.

    Parameters
    ----------
    cells
        The row's label cells, under :attr:`Table.first`.
    where
        Filters of this row's results rows (e.g. ``{"method": "pga_smd"}``).
    metric_prefix
        Put before every column's metric names, for rows that differ by metric (``lira-``).
    """

    cells: tuple[str, ...]
    where: dict[str, str]
    metric_prefix: str = ""


@dataclass(frozen=True)
class Table:
    """A generated table.

    Parameters
    ----------
    name
        Its marker's name, ``<area>/<name>`` by convention.
    area
        The results file it reads.
    where
        Filters of every cell (e.g. the study).
    first
        Headers of the label columns.
    rows, columns
        Its rows and figure columns.
    """

    name: str
    area: str
    where: dict[str, str]
    first: tuple[str, ...]
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]


def _methods(labels: dict[str, str]) -> tuple[Row, ...]:
    """One row per method (results name -> label)."""
    return tuple(Row((label,), {"method": method}) for method, label in labels.items())


def _continual() -> tuple[Column, ...]:
    """The columns of a continual-learning method table: mean ± std over seeds, shares and wall time medians."""
    return (*(Column(header, (metric,)) for header, metric in (
                ("memorizability", "memorizability"), ("unseen", "unseen"), ("held-out E", "held_out"),
                ("BWT", "bwt"), ("forgetting", "forgetting"))),
            Column("alignment share (median, stages 2-4)", ("alignment_share",), "median", ".2f"),
            Column("server share (median)", ("server_share",), "median", ".2f"),
            Column("wall s (median)", ("wall_s",), "median", ".0f"))


def _per_seed(metrics: tuple[str, ...] = ("memorizability", "held_out")) -> tuple[Column, ...]:
    """Seeds 0, 1 and 2's figures, one column each."""
    return tuple(Column(f"seed {seed}", metrics, f"seed:{seed}") for seed in (0, 1, 2))


METHODS = {"fedavg": "fedavg (fine-tuning)", "ewc": "ewc", "replay_buffer": "replay_buffer (real samples, not private)",
           "smd_replay": "smd_replay (SMD replay, no PGA)", "pga_smd": "pga (PGA + SMD replay, shipped)",
           "joint": "joint (upper bound)"}
ABLATIONS = {"smd_replay": "smd_replay (no PGA)", "pga_smd": "pga (full)", "pga_no_server": "pga, no server steps",
             "pga_no_pseudo": "pga, no pseudo-domains", "pga_orientational": "pga, orientational only",
             "pga_arbitrary": "pga, arbitrary only", "pga_real": "pga on real replay (not private)"}
SEED_0 = {"fedavg": "fedavg", "ewc": "ewc", "replay_buffer": "replay_buffer (not private)",
          "smd_replay": "smd_replay", "pga_smd": "pga_smd", "joint": "joint"}
DEFAULT = {"study": "default-methods", "scenario": "sequential_sites"}
MULTIVENDOR = {"study": "multivendor-methods", "scenario": "multivendor_sites"}

CONTINUAL = (
    Table("continual/default-methods", "continual", DEFAULT, ("strategy",), _methods(METHODS), _continual()),
    Table("continual/default-per-seed", "continual", DEFAULT, ("strategy",),
          _methods({m: METHODS[m] for m in ("ewc", "replay_buffer", "smd_replay", "pga_smd")}),
          (*_per_seed(), Column("unseen, seeds 0 / 1 / 2", ("unseen",), "per_seed"))),
    Table("continual/multivendor-methods", "continual", MULTIVENDOR, ("strategy",), _methods(METHODS),
          _continual()),
    Table("continual/multivendor-per-seed", "continual", MULTIVENDOR, ("strategy",),
          _methods({m: METHODS[m] for m in ("ewc", "smd_replay", "pga_smd")}),
          (*_per_seed(), Column("alignment share, seeds 0 / 1 / 2", ("alignment_share",), "per_seed", ".2f"))),
    *(Table(f"continual/{scenario}-ablations", "continual", {"study": f"{scenario}-ablations"}, ("strategy",),
            _methods(ABLATIONS),
            (*_per_seed(), Column("memorizability", ("memorizability",)),
             Column("unseen", ("unseen",), "mean"),
             Column("held-out E", ("held_out",), held_out),
             Column("forgetting", ("forgetting",), "mean"),
             Column("alignment share (median)", ("alignment_share",), "median", ".2f"),
             Column("server share (median)", ("server_share",), "median", ".2f"),
             Column("wall s (median)", ("wall_s",), "median", ".0f")))
      for scenario, held_out in (("default", "mean"), ("multivendor", "mean_std"))),
    *(Table(f"continual/{task}-methods", "continual", {"study": f"{task}-methods"}, ("strategy",), _methods(SEED_0),
            (Column("memorizability", ("memorizability",), "seed:0"), Column("unseen", ("unseen",), "seed:0"),
             Column("held-out E", ("held_out",), "seed:0"), Column("BWT", ("bwt",), "seed:0"),
             Column("forgetting", ("forgetting",), "seed:0"),
             Column("alignment share", ("alignment_share",), "seed:0", ".2f"),
             Column("server share", ("server_share",), "seed:0", ".2f"),
             Column("wall s", ("wall_s",), "seed:0", ".0f"),
             Column("measured", ("memorizability",), "measured")))
      for task in ("grading", "debiasing")),
    Table("continual/smoke-matrix", "continual", {"study": "smoke-matrix"}, ("task",),
          tuple(Row((task,), {"task": task}) for task in ("segmentation", "grading", "debiasing")),
          tuple(Column(strategy, ("wall_s",), "median", ".0f", {"method": strategy}, "{0} s")
                for strategy in ("fedavg", "joint", "ewc", "replay_buffer", "smd_replay", "pga"))),
)

PRIVACY_SETTINGS = {"no-dp": "no DP", "dp-8": "DP, target epsilon 8", "dp-2": "DP, target epsilon 2"}
ATTACKS = {"loss": "loss", "reference": "reference (mean of the 4 LiRA models)", "lira": "lira"}
INTERVAL = "{0} ({1}–{2})"
PRIVACY = (
    Table("privacy/dp-cost", "privacy", {"study": "dp-cost"}, ("setting",), _methods(PRIVACY_SETTINGS),
          (Column("memorizability (Dice)", ("memorizability",)),
           Column("generalizability (Dice)", ("generalizability",)),
           Column("site epsilon (max)", ("site epsilon (max)",), "mean"),
           Column("loss attack AUC", ("loss AUC",)), Column("reference attack AUC", ("reference AUC",)),
           Column("TPR at 1 % FPR (stronger attack)", ("TPR at 1% FPR (best attack)",)),
           Column("marked patients' AUC", ("marked AUC (best attack)",)),
           Column("unmarked patients' AUC", ("unmarked AUC (best attack)",)))),
    Table("privacy/dp-time", "privacy", {"study": "dp-cost"}, ("setting",), _methods(PRIVACY_SETTINGS),
          (Column("wall s, median", ("wall_s",), "median", ".1f"),
           Column("ratio to no DP, median over seeds", ("wall_ratio_to_no_dp",), "median", ".2f"),
           Column("max abs epsilon difference to Opacus", ("epsilon gap",), "max", ".1e"))),
    *(Table(f"privacy/lira-seeds-{seeds.replace(' ', '-')}", "privacy", {"study": "lira", "seed": seeds},
            ("setting", "attack"),
            tuple(Row((PRIVACY_SETTINGS[setting], label), {"method": setting}, f"{attack}-")
                  for setting in ("no-dp", "dp-8") for attack, label in ATTACKS.items()),
            tuple(Column(header, (metric, f"{metric}-ci-low", f"{metric}-ci-high"), "pooled", template=INTERVAL)
                  for header, metric in (("AUC", "auc"), ("TPR at 1 % FPR", "tpr-at-1pct-fpr"),
                                         ("TPR at 0.1 % FPR (not resolved: no false alarm)", "tpr-at-0.1pct-fpr"))))
      for seeds in ("0", "1 2")),
)

UNLEARNING_METHODS = ("none", "retrain", "rewind", "ga", "graddiff", "kl", "npo", "federaser")
UNLEARNING = tuple(
    Table(f"unlearning/{reason}", "unlearning", {"study": "methods", "variant": f"scenario.reason={reason}"},
          ("method",), _methods({m: m for m in UNLEARNING_METHODS}),
          (*(Column(name, (name,)) for name in ("forget", "retain", "test", "s_F", "s_R", "s_T", "UES")),
           Column("cost ratio", ("cost_ratio",)),
           Column("MIA AUC on the forget set, after", ("mia_forget_auc",)),
           Column("MIA AUC before / oracle", ("mia_forget_auc_before", "mia_forget_auc_oracle"), "mean")))
    for reason in ("privacy", "incorrectness"))

DEBIASING_ROWS = tuple(
    Row((setting, ratio, label), {"scenario": scenario, "method": method,
                                  "variant": f"task.bias_ratio={ratio}{suffix}"})
    for setting, scenario in (("centralized", "centralized"), ("federated", "federated_sources"))
    for ratio in ("0.9", "0.95", "0.99")
    for method, label, suffix in (("erm", "erm", ""), ("pbbl", "pbbl", ""),
                                  ("pbbl", "pbbl, site threshold", " task.pseudo_threshold=site"),
                                  ("bias_balanced_oracle", "bias_balanced_oracle", "")))
DEBIASING = (
    Table("debiasing/bias-ratio", "debiasing", {"study": "bias-ratio"}, ("setting", "bias ratio", "method"),
          DEBIASING_ROWS,
          (*(Column(metric, (metric,)) for metric in ("aligned_auc", "conflicting_auc", "balanced_auc",
                                                       "pseudo_label_accuracy")),
           Column("measured (seeds)", ("balanced_auc",), "measured"))),
)

GRADING_MODELS = {"single-t1": "single T1", "single-t1ce": "single T1ce", "single-t2": "single T2",
                  "single-flair": "single FLAIR", "early-fusion": "early fusion", "late-fusion": "late fusion",
                  "cmg-logit": "cmg-logit", "cmg-logit-attention": "cmg-logit-attention",
                  "cmg-feature": "cmg-feature", "cmg-feature-attention": "cmg-feature-attention"}
GRADING = tuple(
    Table(f"grading/{setting}", "grading", {"study": "models", "scenario": scenario}, ("model",),
          _methods(GRADING_MODELS),
          (*(Column(header, (metric,)) for header, metric in columns),
           Column("primary, last choice (seeds 0, 1, 2)", ("primary",), "per_seed", "modality"),
           Column("measured", ("auc",), "measured")))
    for setting, scenario, columns in (
        ("centralized", "centralized", (("AUC", "auc"), ("accuracy", "accuracy"), ("sensitivity", "sensitivity"),
                                        ("specificity", "specificity"))),
        ("sequential", "sequential_sites", (("AUC (A-D)", "auc"), ("accuracy", "accuracy"),
                                            ("sensitivity", "sensitivity"), ("specificity", "specificity"),
                                            ("held-out AUC (E)", "held_out_auc")))))

SCALE_ROWS = tuple(Row((layout, str(n)), {"method": layout, "variant": f"sites={n}"})
                   for layout in ("together", "sequential") for n in (10, 50, 100))
PLATFORM = (
    Table("platform/overhead", "platform", {"study": "overhead"}, ("strategy",), _methods({"fedavg": "fedavg",
                                                                                          "joint": "joint"}),
          (Column("platform, median (s)", ("platform_s",), "median", ".1f"),
           Column("bare PyTorch loop, median (s)", ("bare_s",), "median", ".1f"),
           Column("ratio platform / bare", ("platform_s / bare_s",), "ratio of medians", ".2f"),
           Column("max abs R difference", ("r_gap",), "max", ".1e"))),
    Table("platform/engine-floor", "platform", {"study": "engine-floor"}, ("medians of 3 fresh processes, s",),
          (Row(("Flower's simulation engine, 5 nodes, no work",), {"method": "flower engine, no work"}),),
          tuple(Column(header, (metric,), "median", spec) for header, metric, spec in (
              ("Flower's imports", "flower imports", ".1f"),
              ("start to the first replies (Ray, the actor, its torch and MONAI imports)", "start to first replies",
               ".1f"),
              ("per exchange (send to a node, its reply back)", "per exchange", ".3f"),
              ("shutdown of the engine and Ray", "shutdown", ".1f")))),
    Table("platform/scale", "platform", {"study": "scale"}, ("layout", "sites"), SCALE_ROWS,
          tuple(Column(header, (metric,), "seed:0", spec) for header, metric, spec in (
              ("stages", "stages", ".0f"), ("sites training per round", "sites_training_per_round", ".0f"),
              ("rounds", "rounds", ".0f"), ("wall s", "wall_s", ".1f"), ("start-up s", "startup_s", ".1f"),
              ("s per round", "round_s", ".2f"), ("s per round per training site", "round_s_per_training_site", ".3f"),
              ("s per all-site evaluation", "all_site_evaluation_s", ".2f"), ("closing s", "closing_s", ".1f"),
              ("peak RSS GiB", "peak_rss_gib", ".2f"), ("peak PSS GiB", "peak_pss_gib", ".2f"),
              ("memory per site MiB", "memory_per_site_mib", ".1f")))),
    Table("platform/generator-step", "platform", {"study": "generator-step"}, ("generator",),
          _methods({name: name for name in ("folded 2D (before)", "slice-wise 2D", "3D (shipped)")}),
          (Column("parameters", ("parameters",), "seed:0", ","),
           Column("step, CPU s (median)", ("cpu_s_per_step_median",), "seed:0", ".2f"),
           Column("ratio to folded", ("ratio_to_folded",), "seed:0", ".1f"))),
)

POISONED_SIZE = "size=smoke scenario.rounds_per_stage=3 task.local_steps=10 task.n_train=32 task.n_test=16"
POISONING = {"none": "", "B scaled": "faults.bad_reply=scale faults.bad_reply_prob=1 faults.bad_reply_sites=[B] ",
             "B NaN (left out)": "faults.bad_reply=nan faults.bad_reply_prob=1 faults.bad_reply_sites=[B] "}
ROBUSTNESS = (
    Table("robustness/poisoned-site", "robustness", {"study": "poisoned-site"}, ("strategy", "poisoning"),
          tuple(Row((strategy, condition), {"method": strategy, "variant": POISONING[condition] + POISONED_SIZE})
                for strategy, conditions in (("FedAvg", POISONING), ("FedMedian", ("none", "B scaled")),
                                             ("FedTrimmedAvg", ("none", "B scaled")), ("Krum", ("none", "B scaled")))
                for condition in conditions),
          (*(Column(metric, (metric,), "seed:0") for metric in (
              "memorizability after stage 1 (A-C)", "memorizability after stage 2 (A-F)", "held-out G after stage 2")),
           Column("wall, median (s)", ("wall_s",), "median", ".1f"))),
)

# docs/results.md: one table per question, across studies.
BOTH_SCENARIOS = (("default", DEFAULT), ("multivendor", MULTIVENDOR))
ANSWERS = (
    Table("results/pga", "continual", {}, ("strategy",),
          _methods({m: METHODS[m] for m in ("smd_replay", "pga_smd", "ewc", "replay_buffer", "fedavg", "joint")}),
          tuple(Column(f"{name}: {header}", (metric,), where=where)
                for name, where in BOTH_SCENARIOS
                for header, metric in (("memorizability", "memorizability"), ("held-out E", "held_out")))),
    Table("results/forgetting", "continual", {}, ("strategy",),
          _methods({m: METHODS[m] for m in ("fedavg", "ewc", "smd_replay", "pga_smd", "replay_buffer")}),
          tuple(Column(f"{name}: forgetting", ("forgetting",), where=where) for name, where in BOTH_SCENARIOS)),
    Table("results/dp", "privacy", {"study": "dp-cost"}, ("setting",), _methods(PRIVACY_SETTINGS),
          (Column("memorizability (Dice)", ("memorizability",)), Column("site epsilon (max)", ("site epsilon (max)",),
                                                                        "mean"),
           Column("loss attack AUC", ("loss AUC",)), Column("TPR at 1 % FPR", ("TPR at 1% FPR (best attack)",)),
           Column("wall time, ratio to no DP", ("wall_ratio_to_no_dp",), "median", ".2f"))),
    Table("results/ues", "unlearning", {"study": "methods"}, ("method",),
          _methods({m: m for m in UNLEARNING_METHODS[2:]}),
          tuple(Column(f"{reason}: {header}", (metric,), where={"variant": f"scenario.reason={reason}"})
                for reason in ("privacy", "incorrectness")
                for header, metric in (("UES", "UES"), ("cost ratio", "cost_ratio")))),
)

TABLES = (*ANSWERS, *CONTINUAL, *PRIVACY, *UNLEARNING, *DEBIASING, *GRADING, *PLATFORM, *ROBUSTNESS)
