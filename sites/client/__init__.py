"""The Flower ClientApp a hospital runs, as one small handler per message kind.

- :mod:`~sites.client.runtime`: what every handler shares (task, sites, seed, DP, faults,
  planned steps) and what a node keeps between messages;
- :mod:`~sites.client.queries`: ``query`` (which site this node is), ``query.data``,
  ``query.statistics``, ``query.fisher`` (EWC), ``query.exemplars`` (the real-buffer reference,
  which breaks the privacy rule on purpose), ``query.resume``;
- :mod:`~sites.client.training`: ``train`` and ``train.unlearn``, on an objective composed by
  :mod:`~sites.client.objectives` (replay, PGA, EWC);
- :mod:`~sites.client.generator`: ``train.generator`` (Site-Modulated Diffusion);
- :mod:`~sites.client.evaluation`: ``evaluate``;
- :mod:`~sites.client.audit`: ``query.audit`` (membership inference);
- :mod:`~sites.client.app`: the table from message kind to handler, and
  :func:`build_client_app`.

The messages, their records and their configs are :mod:`sites.protocol`'s. Only model arrays
(the task's model, the generator and its prompt, a Fisher), metrics, counts and, with DP, the
accountant's history (noise, sample rate, steps) leave the site, except through
``query.exemplars``. The site's data is generated (or read) once per Ray actor and kept in
memory for the rest of the run.
"""

from .app import build_client_app

__all__ = ["build_client_app"]
