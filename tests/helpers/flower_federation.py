"""The Flower App deployed on loopback, once per test session, as docs/deployment.md deploys it:
a SuperLink with TLS (a CA made here with ``cryptography``) and SuperNode authentication, the
SuperNodes of the hospitals whose keys ``flwr supernode register`` registered, two SuperNodes it
must refuse (``secured``), and the smoke scenario through ``flwr run`` under the site-node
registry, next to the same scenario in the simulation engine (``deployment``).
tests/simulations/test_deployment_security.py checks who was let in,
tests/simulations/test_deployment.py compares the runs. A pytest plugin of ``tests/conftest.py``,
so that both modules share one federation.
"""

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Two sites, B joining after A; the strategy's own evaluation round is dropped (every site is
# evaluated after each stage anyway), which spares two message round trips.
SMOKE_OVERRIDES = "size=smoke scenario=two_sites seed=3 strategy.fraction_evaluate=0.0"
BIN = Path(sys.executable).parent


class Federation:
    """Flower processes on 127.0.0.1, started and stopped together; ``flwr`` reaches their
    SuperLink as the connection ``loopback``.

    Parameters
    ----------
    root : Path
        Where every process logs (``<name>.log``) and ``flwr`` keeps its config (``flwr-home``).
    ca : Path
        The CA certificate ``flwr`` checks the SuperLink's certificate against.
    """

    def __init__(self, root: Path, ca: Path) -> None:
        self.root = root
        self.link_port = free_port()
        home = root / "flwr-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[superlink.loopback]\naddress = "127.0.0.1:{self.link_port}"\nroot-certificates = "{ca}"\n')
        self.env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1"}
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Federation":
        return self

    def __exit__(self, *exc_info) -> None:
        # All at once: each may take seconds to end gracefully.
        running = [process for process in self._processes if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start(self, name: str, *command: str, cwd: Path | None = None) -> subprocess.Popen:
        """Start ``command`` in the background (in ``cwd``, default ``root``), logging to ``<name>.log``."""
        with (self.root / f"{name}.log").open("w") as log:
            self._processes.append(subprocess.Popen(command, cwd=cwd or self.root, env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT))
        return self._processes[-1]

    def log(self, name: str) -> str:
        """What process ``name`` printed."""
        return (self.root / f"{name}.log").read_text()

    def prints(self, name: str, text: str, timeout: float = 120.0) -> bool:
        """Whether process ``name`` prints ``text`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def start_superlink(self, *flags: str) -> None:
        """Start the SuperLink with ``flags`` and wait until it listens."""
        link = self.start("superlink", str(BIN / "flower-superlink"), "--host", "127.0.0.1", "--port",
                          str(self.link_port), "--disable-runtime-dependency-installation", *flags)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if link.poll() is not None:
                pytest.fail(f"the SuperLink exited with {link.returncode}:\n{self.log('superlink')[-3000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.link_port)) == 0:
                    return
            time.sleep(0.2)
        pytest.fail(f"the SuperLink did not listen on port {self.link_port} within 120 s")

    def start_supernode(self, name: str, *flags: str) -> subprocess.Popen:
        """Start a SuperNode of this SuperLink with ``flags``, on a port of its own."""
        return self.start(name, str(BIN / "flower-supernode"), "--superlink", f"127.0.0.1:{self.link_port}",
                          "--port", str(free_port()), *flags)

    def flwr(self, name: str, *arguments: str) -> subprocess.CompletedProcess:
        """Run ``flwr <arguments>`` to the end, logging to ``<name>.log``."""
        completed = subprocess.run([str(BIN / "flwr"), *arguments], env=self.env, capture_output=True, text=True,
                                   timeout=600)
        (self.root / f"{name}.log").write_text(completed.stdout + completed.stderr)
        return completed


def write_certificates(directory: Path) -> SimpleNamespace:
    """A CA (``ca.crt``) and the SuperLink's certificate it signs for 127.0.0.1 and localhost
    (``server.pem``, key ``server.key``), as the paths ``ca``, ``certificate`` and ``key``."""
    directory.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medsites test CA")])

    def signed(subject: x509.Name, public_key, *extensions: tuple[x509.ExtensionType, bool]) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(ca_key, hashes.SHA384())

    ca = signed(ca_name, ca_key.public_key(), (x509.BasicConstraints(ca=True, path_length=0), True),
                (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                               data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                               encipher_only=False, decipher_only=False), True),
                (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False))
    # The ServerApp next to the SuperLink connects to it at 127.0.0.1 (over TLS too), hence the
    # IP address among the names even where hospitals use a public name.
    server = signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), server_key.public_key(),
                    (x509.BasicConstraints(ca=False, path_length=None), True),
                    (x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                  x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
                    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                    (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False))
    paths = SimpleNamespace(ca=directory / "ca.crt", certificate=directory / "server.pem", key=directory / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return paths


def write_node_key(directory: Path, name: str) -> Path:
    """A SuperNode's key pair in OpenSSH format, as ``ssh-keygen -t ecdsa -b 384`` writes it:
    the private key at the returned path, the public key next to it (``.pub``)."""
    directory.mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    path = directory / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.with_suffix(".pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                       serialization.PublicFormat.OpenSSH))
    return path


@pytest.fixture(scope="session")
def secured(tmp_path_factory) -> SimpleNamespace:
    """The secured federation, up: its ``federation``, ``root``, ``node_ids`` (site -> the node id
    registration gave its hospital's key) and ``refused``: the SuperNodes whose keys were never
    registered, one trusting the CA (``stranger``), one not (``no-ca``). Every process started
    here, or by a fixture using this one, is stopped whatever happens."""
    root = tmp_path_factory.mktemp("deployment")
    certs = write_certificates(root / "certs")
    keys = {name: write_node_key(root / "keys", name) for name in ("A", "B", "stranger", "no-ca")}
    with Federation(root, certs.ca) as federation:
        federation.start_superlink("--ssl-ca-certfile", str(certs.ca), "--ssl-certfile", str(certs.certificate),
                                   "--ssl-keyfile", str(certs.key), "--enable-supernode-auth")
        node_ids = {}
        for name in "AB":
            public_key = str(keys[name].with_suffix(".pub"))
            registered = federation.flwr(f"register-{name}", "supernode", "register", public_key, "loopback",
                                         "--format", "json")
            assert registered.returncode == 0, federation.log(f"register-{name}")[-3000:]
            node_ids[name] = json.loads(registered.stdout)["node-id"]

        def supernode(name: str, site: str, *tls: str) -> subprocess.Popen:
            return federation.start_supernode(f"supernode-{name}", *tls, "--auth-supernode-private-key",
                                              str(keys[name]), "--node-config", f"site='{site}'")

        trusting = ("--root-certificates", str(certs.ca))
        for site in "AB":
            supernode(site, site, *trusting)
        refused = {"stranger": supernode("stranger", "A", *trusting), "no-ca": supernode("no-ca", "B")}
        yield SimpleNamespace(federation=federation, root=root, node_ids=node_ids, refused=refused)


@pytest.fixture(scope="session")
def deployment(secured) -> Path:
    """The root of the secured federation's runs: ``deployed``, the smoke run through ``flwr run``
    with A's and B's registered node ids as ``deployment.site_nodes``, and ``simulated``, the
    same overrides in the simulation engine, run meanwhile."""
    federation, root = secured.federation, secured.root
    simulated = federation.start("simulation", sys.executable, "-m", "simulations.run", *SMOKE_OVERRIDES.split(),
                                 f"hydra.run.dir={root / 'simulated'}", cwd=ROOT)
    registry = ",".join(f"{site}:{node}" for site, node in secured.node_ids.items())
    federation.flwr("deployed", "run", str(ROOT), "loopback", "--stream", "--run-config",
                    f"overrides='{SMOKE_OVERRIDES} deployment.site_nodes={{{registry}}}' run-dir='{root / 'deployed'}'")
    assert (root / "deployed" / "report.md").is_file(), federation.log("deployed")[-3000:]
    assert simulated.wait(timeout=600) == 0, federation.log("simulation")[-3000:]
    return root
