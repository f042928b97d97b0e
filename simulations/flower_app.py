"""The simulation's ServerApp and ClientApp as a Flower App, for a federation of real machines.

``pyproject.toml`` declares :data:`server_app` and :data:`client_app`, so ``flwr run .
<connection>`` ships this code to a SuperLink, which runs the ServerApp, while every hospital's
SuperNode runs the ClientApp (docs/deployment.md). Both compose the run's config from
``configs/`` with the Hydra overrides of Flower's run config (``overrides``) and build their app
exactly as ``python -m simulations.run`` does, so the same overrides and seed give the same run.

A SuperNode names the site it plays in its node config: ``site`` (an id of the scenario), or
Flower's ``partition-id`` (the i-th site, as in the simulation engine). ``manifest`` points the
task at the hospital's own data.
"""

import functools
import shlex
from logging import ERROR, INFO
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig

from server.server_app import Timeline, build_server_app
from sites.errors import ConfigError, MedsitesError

from .console import print_summary
from .run import close_run, open_run, prepare, site_app
from .tracking import track

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def compose_config(overrides: str, node_overrides: tuple[str, ...] = ()) -> DictConfig:
    """The run's config: ``configs/config.yaml`` composed with Hydra overrides.

    Parameters
    ----------
    overrides : str
        The run config's ``overrides``: space-separated, shell-quoted, as on the command line
        of ``python -m simulations.run``.
    node_overrides : tuple of str
        Overrides one SuperNode adds for itself (its data).
    """
    try:
        every = [*shlex.split(overrides), *node_overrides]
    except ValueError as error:
        raise ConfigError("overrides", f"{overrides!r}: {error}") from error
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
            return compose("config", overrides=every)
    except HydraException as error:
        raise ConfigError("overrides", f"{' '.join(every)!r} do not compose: {error}") from error


def run_dir_of(context: Context) -> Path:
    """The run directory the run config names, or ``outputs/flwr-run-<run id>``."""
    return Path(str(context.run_config["run-dir"]) or f"outputs/flwr-run-{context.run_id}")


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    run_dir = run_dir_of(context)
    try:
        prepared = open_run(compose_config(str(context.run_config["overrides"])), run_dir)
        plan = prepared.plan
        stages = len(plan.scenario.stages)
        with track(prepared.config.tracking, run_dir, plan.task.primary_metric) as tracking:
            timeline = Timeline(plan, on_stage=lambda stage: log(INFO, "stage %d/%d done", stage, stages),
                                on_event=None if tracking is None else tracking.on_event)
            build_server_app(timeline)(grid, context)
            result = close_run(timeline, tracking)
    except MedsitesError as error:
        log(ERROR, "medsites: %s", error)
        raise
    print_summary(result, str(run_dir))


@functools.lru_cache(maxsize=4)
def _site_app(overrides: str, node_overrides: tuple[str, ...], run_dir: Path) -> tuple[ClientApp, tuple[str, ...]]:
    """The run's ClientApp and its site ids in scenario order, built once per process."""
    prepared = prepare(compose_config(overrides, node_overrides), run_dir)
    return site_app(prepared), tuple(site.id for site in prepared.plan.scenario.sites)


def site_index(node_config: dict, site_ids: tuple[str, ...]) -> int:
    """Position in the scenario of the site a SuperNode's node config names."""
    if "site" in node_config:
        site = str(node_config["site"])
        if site not in site_ids:
            raise ConfigError("site", f"this SuperNode plays site {site!r}, which the scenario does not have "
                              f"(sites: {', '.join(site_ids)})")
        return site_ids.index(site)
    if "partition-id" in node_config:
        index = int(node_config["partition-id"])
        if not 0 <= index < len(site_ids):
            raise ConfigError("partition-id", f"{index} is out of range: the scenario has {len(site_ids)} sites")
        return index
    raise ConfigError("site", "the node config names no site; start the SuperNode with --node-config \"site='A'\"")


class SiteClientApp(ClientApp):
    """The ClientApp of a hospital's SuperNode.

    Builds, from each message's run config, the ClientApp of :func:`simulations.run.site_app`
    and hands it the message as the site the node config names (the built app knows sites by
    Flower's partition id, as the simulation engine numbers them).
    """

    def __call__(self, message: Message, context: Context) -> Message:
        node = context.node_config
        node_overrides = (f"task.manifest='{node['manifest']}'",) if "manifest" in node else ()
        app, site_ids = _site_app(str(context.run_config["overrides"]), node_overrides, run_dir_of(context))
        as_site = Context(context.run_id, context.node_id, {**node, "partition-id": site_index(node, site_ids)},
                          context.state, context.run_config, context.series_id)
        return app(message, as_site)


client_app = SiteClientApp()
