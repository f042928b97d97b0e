"""What a withdrawal spends of the sites' privacy budget when they train with DP (``privacy=dp``).

Unlearning steps that touch a site's data (the forget part at the withdrawing site, the retain
part, retraining and FedEraser's calibration at the others) are DP-SGD steps charged to that
site's accountant like training. The oracle every method is scored against is the simulator's
yardstick, which a deployment never trains: unless it is the method's own result (``retrain``),
the sites' accountants are set back after its retraining, so that they hold what the deployment
would have spent (docs/privacy.md).
"""

from collections.abc import Mapping, Sequence

from sites.privacy import SiteAccountant

from .records import BeforeAfter, SiteSpend, UnlearningSpend, WithdrawalPrivacy, WithdrawalRecord

#: Accountant histories (JSON) by site id; a site left out has taken no DP-SGD step.
Histories = Mapping[str, str]


def _figures(history: str | None, delta: float) -> tuple[int, float]:
    accountant = SiteAccountant(history or "[]")
    return accountant.steps, accountant.epsilon(delta)


def privacy_record(roles: Mapping[str, str], before: Histories, after: Histories, delta: float) -> WithdrawalPrivacy:
    """``withdrawal.json``'s ``privacy``: each site's role and its accountant's DP-SGD steps and
    epsilon (at ``delta``) before and after the withdrawal.

    Parameters
    ----------
    roles : mapping
        Site id -> ``forget`` (the withdrawing site) or ``retain`` (the sites that trained by
        the withdrawal and remain), in report order.
    before, after : mapping
        The accountant histories before the withdrawal and once it is unlearned.
    delta : float
        The delta of the sites' (epsilon, delta) guarantee.
    """
    sites = {}
    for site, role in roles.items():
        (steps_before, epsilon_before), (steps_after, epsilon_after) = (_figures(histories.get(site), delta)
                                                                       for histories in (before, after))
        sites[site] = SiteSpend(role, BeforeAfter(steps_before, steps_after),
                                BeforeAfter(epsilon_before, epsilon_after))
    return WithdrawalPrivacy(delta, sites)


def unlearning_spent(withdrawals: Sequence[WithdrawalRecord], site: str) -> list[UnlearningSpend]:
    """The withdrawals whose unlearning took DP-SGD steps at ``site``: for each, the withdrawn
    site, stage and method, the steps taken there and the epsilon before and after."""
    spent = []
    for record in withdrawals:
        figures = None if record.privacy is None else record.privacy.sites.get(site)
        if figures is not None and figures.steps.after > figures.steps.before:
            spent.append(UnlearningSpend(record.site, record.stage, record.method,
                                         figures.steps.after - figures.steps.before, figures.epsilon))
    return spent
