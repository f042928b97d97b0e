"""The one place that starts Flower's simulation engine (Ray backend).

Each site is a Flower SuperNode whose ClientApp runs in a Ray actor; the ServerApp runs in a
thread of this process.
"""

import logging
import os
import warnings

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.simulation import run_simulation

from sites.errors import ConfigError


def run_federation(server_app: ServerApp, client_app: ClientApp, num_sites: int, client_cpus: float,
                   verbose: bool = False) -> None:
    """Run the apps until the ServerApp returns; re-raise what it raised.

    Parameters
    ----------
    server_app, client_app : ServerApp, ClientApp
        The Flower apps.
    num_sites : int
        Number of SuperNodes (one per site; partition id ``i`` plays site ``i``).
    client_cpus : float
        CPUs per Ray actor; Ray runs as many actors as fit on the machine's cores.
    verbose : bool
        Show Flower's and Ray's logs (hidden by default; errors reach the user anyway).
    """
    cpus = os.cpu_count() or 1
    if client_cpus <= 0 or client_cpus > cpus:
        raise ConfigError("backend.client_cpus", f"must be in (0, {cpus}] on this machine (got {client_cpus})")
    backend_config = {
        "client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
        "init_args": {
            "logging_level": logging.INFO if verbose else logging.ERROR,
            "log_to_driver": verbose,
            "num_cpus": cpus,
        },
    }
    flwr_logger = logging.getLogger("flwr")
    previous_level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=num_sites,
                backend_config=backend_config,
                verbose_logging=verbose,
            )
    finally:
        flwr_logger.setLevel(previous_level)
