"""The one place that starts Flower's simulation engine (Ray backend).

Each site is a Flower SuperNode whose ClientApp runs in a Ray actor; the ServerApp runs in a
thread of this process. The actors run on a private Ray instance started for the run, or on the
nodes of a Ray cluster the run attaches to (``backend.address``, docs/cluster.md).
"""

import logging
import os
import socket
import warnings

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.simulation import run_simulation

from sites.device import ResolvedDevice
from sites.errors import ConfigError


def run_federation(server_app: ServerApp, client_app: ClientApp, num_sites: int, client_cpus: float,
                   verbose: bool = False, address: str | None = None, client_gpus: float = 0.0,
                   device: ResolvedDevice = "cpu") -> None:
    """Run the apps until the ServerApp returns; re-raise what it raised.

    Parameters
    ----------
    server_app, client_app : ServerApp, ClientApp
        The Flower apps.
    num_sites : int
        Number of SuperNodes (one per site; partition id ``i`` plays site ``i``).
    client_cpus : float
        CPUs per Ray actor; Ray runs as many actors as fit on the machine's cores (on each node's
        cores when attached to a cluster).
    verbose : bool
        Show Flower's and Ray's logs (hidden by default; errors reach the user anyway).
    address : str or None
        ``None`` starts a private Ray instance on this machine; ``"<host>:<port>"`` of a Ray head
        node, or ``"auto"``, attaches to that running cluster and leaves it running afterwards.
    client_gpus : float
        GPUs per Ray actor (a fraction shares one GPU between sites).
    device : str
        The resolved device of the sites' torch work (:class:`sites.device.Compute`).
    """
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
                backend_config=ray_backend_config(client_cpus, address, verbose, client_gpus, device),
                verbose_logging=verbose,
            )
    finally:
        flwr_logger.setLevel(previous_level)


def ray_backend_config(client_cpus: float, address: str | None, verbose: bool, client_gpus: float = 0.0,
                       device: ResolvedDevice = "cpu") -> dict:
    """Flower's backend config for a private Ray instance or an attached cluster, once
    ``client_cpus`` and ``client_gpus`` are known to fit on one node of it.

    Parameters
    ----------
    client_cpus : float
        CPUs per site actor.
    address : str or None
        The cluster to attach to (see :func:`run_federation`), or ``None``.
    verbose : bool
        Let Ray log at INFO level and forward the actors' output.
    client_gpus : float
        GPUs per site actor.
    device : str
        Where the sites' torch work runs: ``cuda`` needs ``client_gpus > 0``, since Ray hides
        the GPUs from an actor that asked for none.

    Raises
    ------
    ConfigError
        ``backend.address`` when no Ray cluster answers there, ``backend.client_cpus`` or
        ``backend.client_gpus`` when an actor would fit on no node, ``backend.client_gpus`` when
        CUDA sites get no GPU.
    """
    init_args = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address is None:
        # torch is loaded by then (the task built); Ray finds the same GPUs for itself.
        import torch

        cpus, gpus, where = os.cpu_count() or 1, torch.cuda.device_count(), "on this machine"
        init_args["num_cpus"] = cpus
    else:
        # Attached, each node declares its own CPUs (Ray refuses num_cpus), and Flower's closing
        # ray.shutdown() only disconnects this process from the cluster.
        (cpus, gpus), where = largest_node(address), f"on the largest node of the Ray cluster at {address}"
        init_args["address"] = address
    if client_cpus <= 0 or client_cpus > cpus:
        raise ConfigError("backend.client_cpus", f"must be in (0, {cpus:g}] {where} (got {client_cpus})")
    if client_gpus > gpus:
        raise ConfigError("backend.client_gpus", f"must be in [0, {gpus:g}] {where} (got {client_gpus})")
    if device == "cuda" and client_gpus == 0:
        raise ConfigError("backend.client_gpus", "is 0 but device is cuda: Ray hides the GPUs from site actors "
                          "that ask for none; give each a share (e.g. 0.25) or use device=cpu")
    return {"client_resources": {"num_cpus": client_cpus, "num_gpus": client_gpus}, "init_args": init_args}


def largest_node(address: str) -> tuple[float, float]:
    """The most CPUs and the most GPUs of a live node of the Ray cluster at ``address``
    (``"<host>:<port>"`` of its head, or ``"auto"``); a site's actor must fit on one node."""
    if address != "auto":
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("backend.address", 'must be null, "auto" or "<host>:<port>" of a Ray head node '
                              f"(got {address!r})")
        try:
            # ray.init waits for minutes on an address where no head listens: fail at once instead.
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as error:
            raise ConfigError("backend.address", f"no Ray head node answers at {address} ({error})") from None
    # Imported here: runs on a private instance leave importing Ray to Flower.
    import ray

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ConfigError("backend.address", f"cannot attach to the Ray cluster at {address}: {error}") from None
    try:
        alive = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        return tuple(max((resources.get(kind, 0.0) for resources in alive), default=0.0) for kind in ("CPU", "GPU"))
    finally:
        ray.shutdown()
