"""The poisoned-site benchmark's runs are valid configs that poison only B."""

from omegaconf import OmegaConf

from benchmarks.common import compose_config
from benchmarks.poisoned_site import cases
from simulations.run import prepare


def test_every_run_of_the_study_is_a_valid_config(tmp_path):
    runs = list(cases(0, ["size=smoke"]))
    assert len(runs) == 9
    for strategy, condition, overrides in runs:
        plan = prepare(OmegaConf.create(compose_config(overrides)), tmp_path).plan
        assert type(plan.strategy).__name__ == strategy
        poisoned = condition != "none"
        assert (plan.faults.bad_reply_prob, plan.faults.bad_reply_sites) == ((1.0, ["B"]) if poisoned else (0.0, None))
