"""Every built-in strategy of ``flwr.serverapp.strategy`` but the XGBoost ones, and each of
Flower's differential-privacy wrappers around FedAvg, runs unchanged through the platform
(the list: docs/strategies.md).

Each case is a run of the ``sites_in_threes`` scenario (three sites per stage) at
``size=smoke``, composed from the overrides a user would give ``python -m simulations.run``.
Starting the sites' actors costs more than a smoke run's work, so the runs whose sites run the
same ClientApp share one federation (on the session's Ray head): its ServerApp runs their
timelines one after another, each validated, written and reported by the functions
``python -m simulations.run`` uses. (The command line's own path with a Flower strategy is
tested in tests/e2e/test_e2e.py.)
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_only_declared_content_left_the_sites, build_scenario, load_config, read_json
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from omegaconf import DictConfig

from server.checkpoint import RunState
from server.server_app import Timeline
from simulations.engine import run_federation
from simulations.flower_app import compose_config
from simulations.run import close_run, open_run, prepare, site_app
from strategies import train_mods

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASE = ("size=smoke scenario=sites_in_threes task.image_size=32 task.channels=[8,16] task.strides=[2] "
        "backend.client_cpus=1")
DP_FEDAVG = "strategy=dp_fedavg strategy.num_sampled_clients=3"
# Adaptive clipping takes no fixed norm, and its noisy count of clipped updates must have a
# standard deviation above half the noise multiplier (its default, 3 / 20, is not).
DP_ADAPTIVE = f"{DP_FEDAVG} ~strategy.clipping_norm +strategy.clipped_count_stddev=1.0"
# Strategy class -> the overrides that choose it here (its ``_target_`` is added): the
# arguments it needs, or that make it do more than FedAvg on three sites.
CASES = {
    "FedAvg": "",
    "FedAvgM": "+strategy.server_momentum=0.9",
    "FedProx": "+strategy.proximal_mu=0.1",
    "FedAdagrad": "+strategy.eta=0.01",
    "FedAdam": "+strategy.eta=0.01",
    "FedYogi": "+strategy.eta=0.01",
    "FedMedian": "",
    "FedTrimmedAvg": "+strategy.beta=0.4",
    "Krum": "",
    "MultiKrum": "+strategy.num_nodes_to_select=2",
    "Bulyan": "",
    "QFedAvg": "'+strategy.client_learning_rate=${task.lr}'",
    "DifferentialPrivacyServerSideFixedClipping": DP_FEDAVG,
    "DifferentialPrivacyServerSideAdaptiveClipping": DP_ADAPTIVE,
    "DifferentialPrivacyClientSideFixedClipping": DP_FEDAVG,
    "DifferentialPrivacyClientSideAdaptiveClipping": DP_ADAPTIVE,
}


def overrides(name: str) -> str:
    """The command-line overrides of a case."""
    return f"{BASE} {CASES[name]} strategy._target_=flwr.serverapp.strategy.{name}"


def _run_together(cases: list[tuple[str, DictConfig]], root: Path, ray_head: str) -> dict[str, Path | str]:
    """Run ``(name, config)`` cases whose sites run the same ClientApp in one federation on the
    Ray head at ``ray_head``; each case's run directory, or the error that stopped it."""
    outcomes = {}
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for name, cfg in cases:
            try:
                timeline = Timeline(open_run(cfg, root / name).plan)
                timeline.run(grid)
                close_run(timeline)
                outcomes[name] = root / name
            except Exception as error:  # noqa: BLE001 - one strategy's failure is its own test's
                outcomes[name] = f"{type(error).__name__}: {error}"

    name, cfg = cases[0]
    first = prepare(cfg, root / name)
    try:
        run_federation(app, site_app(first), len(first.plan.scenario.sites), first.config.backend.client_cpus,
                       address=ray_head)
    except Exception as error:  # noqa: BLE001 - the engine failed (Ray): the cases it left fail with it
        for name, _ in cases:
            outcomes.setdefault(name, f"the federation failed: {type(error).__name__}: {error}")
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, ray_head) -> dict[str, Path | str]:
    """Every case's run directory, or the error that stopped it."""
    root = tmp_path_factory.mktemp("flower_strategies")
    outcomes, federations = {}, {}
    for name in CASES:
        try:
            cfg = compose_config(overrides(name))
            mods = tuple(train_mods(prepare(cfg, root / name).plan.strategy))
        except Exception as error:  # noqa: BLE001 - a config the platform refuses fails its own test
            outcomes[name] = f"{type(error).__name__}: {error}"
            continue
        federations.setdefault(mods, []).append((name, cfg))
    for cases in federations.values():
        outcomes.update(_run_together(cases, root, ray_head))
    return outcomes


def _differs(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize("name", CASES)
def test_flowers_strategy_trains_every_stage(name, outcomes):
    run_dir = outcomes.get(name, "its federation stopped")
    assert isinstance(run_dir, Path), f"{overrides(name)}: {run_dir}"
    scenario = build_scenario(load_config("scenario", "sites_in_threes"))
    matrix = read_json(run_dir / "matrix.json")
    assert matrix["sites"] == scenario.site_ids and len(matrix["R"]) == len(scenario.stages)
    assert all(0.0 <= value <= 1.0 for row in matrix["R"] for value in row)
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = {(e["stage"], e["site"]) for e in events if e["event"] == "train"}
    assert trained == {(stage.index, site) for stage in scenario.stages for site in stage.sites}
    state = RunState.load(run_dir / "checkpoints")
    assert type(state.strategy).__name__ == name
    # every stage moved the global model: its aggregate was not skipped
    models = [state.initial.to_torch_state_dict()]
    models += [torch.load(run_dir / "checkpoints" / f"stage_{stage.index}.pt") for stage in scenario.stages]
    assert all(_differs(before, after) for before, after in zip(models, models[1:]))
    assert_only_declared_content_left_the_sites(run_dir)
