"""How classifier-free guidance changes SMD's replay: one trained generator sampled at several
guidance scales, its fidelity measured alike at each (:mod:`simulations.replay_fidelity`).

The generator is a finished run's (``checkpoints/replay.pt``, trained with
``replay.generator.prompt_dropout`` > 0), the real data, seed and sample counts are that run's.
The table gives, per scale, the site classifier's accuracy on replay (real test images beside
it), the class classifier's for classification tasks, per site the organ contrast of replay as a
share of real for segmentation, and the seconds sampling took.

    python -m simulations.run strategy=smd_replay replay.generator.prompt_dropout=0.1 seed=0 hydra.run.dir=runs/smd
    python -m benchmarks.smd_guidance runs/smd --guidance 1 1.5 2 3
"""

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from benchmarks.results import Recorder, add_arguments
from simulations.formatting import fmt, table_header, table_row
from simulations.replay_fidelity import contrast_ratio, measure_fidelity
from simulations.run import prepare
from sites.protocol import GeneratorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished run with SMD replay")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    add_arguments(parser)
    args = parser.parse_args()
    generator = args.run_dir / "checkpoints" / "replay.pt"
    if not generator.exists():
        parser.error(f"{generator} does not exist: run_dir must hold a finished run with replay=smd")
    wire = GeneratorConfig.from_record(torch.load(generator)["wire"])
    if wire.prompt_dropout == 0 and args.guidance != [1.0]:
        parser.error(f"{generator} was trained with prompt_dropout 0: it has no site-free model to guide with")
    prepared = prepare(OmegaConf.load(args.run_dir / "config.yaml"), args.run_dir)
    plan = prepared.plan
    torch.set_num_threads(int(prepared.config.backend.client_cpus))
    rows = []
    for guidance in args.guidance:
        start = time.perf_counter()
        fidelity = measure_fidelity(generator, plan.task, plan.scenario, plan.seed, plan.replay.per_site,
                                    plan.replay.generator.sampling_steps, guidance)
        rows.append((guidance, fidelity, time.perf_counter() - start))

    sites = list(rows[0][1]["sites"])
    contrast = all(rows[0][1]["sites"][site]["real"].get("organ_contrast") for site in sites)
    columns = ["guidance", "site accuracy: replay (real test; real training)"]
    columns += ["class accuracy: replay (real test; real training)"] if "class_accuracy" in rows[0][1] else []
    columns += [f"{site}: organ contrast, replay / real" for site in sites] if contrast else []
    print(f"{args.run_dir}: {plan.replay.per_site} samples a site, {plan.replay.generator.sampling_steps} DDIM steps, "
          f"prompt_dropout {wire.prompt_dropout}\n")
    print(*table_header((*columns, "seconds (sampling and measuring)")), sep="\n")
    recorder = Recorder.from_args(args, "continual", "benchmarks.smd_guidance")
    config = prepared.resolved
    for guidance, fidelity, seconds in rows:
        figures = {f"{key}_{part}": fidelity[key][part] for key in ("site_accuracy", "class_accuracy")
                   if key in fidelity for part in ("replay", "real", "real_training")}
        recorder.record(config, {**figures, "wall_s": seconds}, seed=plan.seed, method="smd_replay",
                        variant=f"replay.generator.guidance={guidance:g}")
        if contrast:
            for site, stats in fidelity["sites"].items():
                recorder.record(config, {"organ_contrast_ratio": contrast_ratio(stats)}, seed=plan.seed,
                                method="smd_replay", variant=f"replay.generator.guidance={guidance:g}",
                                split_or_site=site)
        cells = [f"{guidance:g}", _accuracy(fidelity["site_accuracy"])]
        cells += [_accuracy(fidelity["class_accuracy"])] if "class_accuracy" in fidelity else []
        if contrast:
            cells += [fmt(contrast_ratio(stats), 2) for stats in fidelity["sites"].values()]
        print(table_row((*cells, f"{seconds:.0f}")), flush=True)


def _accuracy(accuracy: dict[str, float | None]) -> str:
    return f"{fmt(accuracy['replay'])} ({fmt(accuracy['real'])}; {fmt(accuracy['real_training'])})"


if __name__ == "__main__":
    main()
