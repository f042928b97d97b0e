"""``unlearning=ga|graddiff|kl|npo``: rounds of a site objective of :mod:`sites.unlearning`.

The forget part runs at the withdrawing site, the retain part (if the objective has one) at the
sites that remain, from the same model; the server adds the forget update and the
example-weighted mean of the retain updates.
"""

from collections import Counter
from dataclasses import replace

from flwr.app import ArrayRecord
from pydantic import PositiveFloat, PositiveInt, field_validator

from sites.config import ConfigModel
from sites.protocol import UNLEARN, RecordName, UnlearnConfig
from sites.tasks import Task
from sites.unlearning import SITE_OBJECTIVES
from strategies.aggregation import weighted_mean

from ..scenario import Scenario, Withdrawal
from .base import UnlearningContext, UnlearningMethod, moved


class SiteObjectivesArguments(ConfigModel):
    """:class:`SiteObjectives`' arguments.

    Parameters
    ----------
    objective : str
        A site objective's name in :data:`~sites.unlearning.SITE_OBJECTIVES` (``ga``,
        ``graddiff``, ``kl``, ``npo``, or a user's) or the import path of its class.
    rounds : int
        Unlearning rounds.
    local_steps : int
        Optimizer steps each site takes per round.
    lr : float
        Adam learning rate.
    beta : float
        ``npo``: the inverse temperature of the loss.
    """

    objective: str
    rounds: PositiveInt = 4
    local_steps: PositiveInt = 5
    lr: PositiveFloat = 1e-4
    beta: PositiveFloat = 1.0

    @field_validator("objective")
    @classmethod
    def _known(cls, objective: str) -> str:
        return SITE_OBJECTIVES.validated(objective)


class SiteObjectives(UnlearningMethod):
    """Unlearning rounds of a site objective. Its arguments: :class:`SiteObjectivesArguments`."""

    arguments = SiteObjectivesArguments

    def __init__(self, objective: str, rounds: int, local_steps: int, lr: float, beta: float) -> None:
        self.site_objective = SITE_OBJECTIVES.get(objective, "unlearning.objective")
        self.objective, self.rounds, self.local_steps, self.lr, self.beta = objective, rounds, local_steps, lr, beta

    @property
    def name(self) -> str:
        return self.objective

    def retain_sites(self, withdrawal: Withdrawal, scenario: Scenario) -> list[str]:
        """The sites that run the retain part: those that trained by the withdrawal and remain
        (none if the objective has no retain part)."""
        if not self.site_objective.retains:
            return []
        gone = scenario.gone_at(withdrawal)
        return [site for site in scenario.seen_by(withdrawal.stage) if site not in gone]

    def planned_steps(self, withdrawal: Withdrawal, scenario: Scenario, task: Task) -> Counter[str]:
        steps = self.rounds * self.local_steps
        return Counter({withdrawal.site: steps, **{site: steps for site in self.retain_sites(withdrawal, scenario)}})

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        retain = self.retain_sites(withdrawal, context.scenario)
        forget_config = UnlearnConfig(self.objective, "forget", self.local_steps, self.lr, self.beta)
        reference = {RecordName.REFERENCE: arrays}  # the model before withdrawal
        for _ in range(self.rounds):
            (forget, _), = context.updates_of([withdrawal.site], arrays, UNLEARN, forget_config, reference)
            moves = [forget]
            if retain:
                moves.append(weighted_mean(context.updates_of(retain, arrays, UNLEARN,
                                                              replace(forget_config, role="retain"), reference)))
            arrays = moved(arrays, *moves)
        return arrays
