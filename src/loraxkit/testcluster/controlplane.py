"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (node heartbeats and pod lifecycle without a kubelet).

Built from go/kube, go/etcd and go/kwok (`loraxkit tools build`). Every process is started by this
module, recorded by pid, and stopped by that pid (SIGTERM, then SIGKILL after a grace period); if the
starting process is killed before it can stop them, the kernel kills them too (`childproc.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loraxkit import gotools
from loraxkit.childproc import die_with_parent

KUBE_VERSION = "v1.35.4"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"  # KWOK manages only nodes carrying it (value "fake")
# (tool, binary) for every process; a missing one makes the cluster tests skip
BINARIES = {
    "etcd": ("etcd", "etcd"),
    "kube-apiserver": ("kube", "kube-apiserver"),
    "kube-controller-manager": ("kube", "kube-controller-manager"),
    "kube-scheduler": ("kube", "kube-scheduler"),
    "kwok": ("kwok", "kwok"),
    "kwok-stages": ("kwok", "kwok-stages"),
}
# kube-state-metrics: not part of the plane; tests/observability runs it against the API server
TOOLS = ("kube", "etcd", "kwok", "helm", "kube-state-metrics")
BUILD_COMMAND = "loraxkit tools build " + " ".join(TOOLS)


class ControlPlaneError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


def missing_binaries() -> list[str]:
    """Binaries (of the control plane, helm and kube-state-metrics) that are not built."""
    wanted = [*BINARIES.values(), ("helm", "helm"), ("kube-state-metrics", "kube-state-metrics")]
    return [binary for tool, binary in wanted if gotools.bin_path(tool, binary) is None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OWNER_FILE = "owner.pid"  # in etcd's data folder: the pid of the process that started it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _sweep_orphans(base: Path, prefix: str) -> None:
    """Remove data folders left by a run that was killed before its teardown (tmpfs is memory)."""
    for folder in base.glob(prefix + "*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: no owner recorded
        if not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _shm_dir(prefix: str) -> Path:
    """etcd's data on tmpfs when there is one: fsync-free and off the shared disk."""
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    _sweep_orphans(base, prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    (folder / OWNER_FILE).write_text(str(os.getpid()))
    return folder


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ControlPlane:
    """Start with `start()`, stop with `stop()`; `kubeconfig` is the admin's (system:masters)."""

    workdir: Path
    processes: list[Process] = field(default_factory=list)
    server: str = ""
    token: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0
    etcd_data: Path | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    def binary(self, name: str) -> str:
        tool, binary = BINARIES.get(name, (name, name))
        path = gotools.bin_path(tool, binary)
        if path is None:
            raise ControlPlaneError(f"{binary} is not built; run `{BUILD_COMMAND}`")
        return str(path)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> ControlPlane:
        started = self.started_at = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url, timeout)
            self.timings["apiserver_ready_s"] = time.monotonic() - started
            self._write_kubeconfig()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._wait_components(timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["ready_s"] = time.monotonic() - started
        return self

    def stop(self, grace: float = 10) -> None:
        """SIGTERM each recorded pid in reverse start order, SIGKILL what is left after `grace` s."""
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it may exit between poll and kill
                    os.kill(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in reversed(self.processes):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        self.processes.clear()
        if self.etcd_data is not None:
            shutil.rmtree(self.etcd_data, ignore_errors=True)  # tmpfs is memory: give it back
            self.etcd_data = None

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (exit {p.popen.poll()})\n{p.tail()}" for p in self.processes)

    # -- components ----------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Process:
        log = self.workdir / f"{name}.log"
        parent = os.getpid()
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [self.binary(name), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is pytest's to handle, not theirs
                preexec_fn=lambda: die_with_parent(parent),  # a SIGKILLed test run leaves no server behind
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        (self.workdir / "pids").write_text(
            "".join(f"{p.name} {p.popen.pid}\n" for p in self.processes)  # for a manual clean-up
        )
        return proc

    def _start_etcd(self) -> str:
        client, peer = _free_port(), _free_port()
        data = self.etcd_data = _shm_dir("loraxkit-etcd-")
        url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                f"--data-dir={data}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # test data: durability buys nothing, fsync costs seconds on a busy disk
                "--log-level=warn",
            ],
        )
        return url

    def _start_apiserver(self, etcd_url: str, timeout: float) -> None:
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key = certs / "sa.key"
        sa_pub = certs / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
            check=True,
            capture_output=True,
        )
        self.token = secrets.token_hex(16)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.token},admin,admin,system:masters\n")
        tokens.chmod(0o600)
        port = _free_port()
        self.server = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={certs}",  # it self-signs its serving cert (localhost, 127.0.0.1) here
                f"--token-auth-file={tokens}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",  # no real IP to publish for the kubernetes Service
                "--profiling=false",
            ],
        )
        self._wait(lambda: self._get("/readyz") == 200, "kube-apiserver /readyz", timeout)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "loopback",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "admin"}}],
            "current-context": "loopback",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.kubeconfig.chmod(0o600)

    def _component_flags(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]

    def _start_controller_manager(self) -> None:
        port = _free_port()
        self.kcm_port = port
        self._spawn(
            "kube-controller-manager",
            [
                *self._component_flags(),
                f"--secure-port={port}",
                f"--service-account-private-key-file={self.workdir / 'certs' / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cluster-cidr={POD_CIDR}",
                "--use-service-account-credentials=false",
            ],
        )

    def _start_scheduler(self) -> None:
        port = _free_port()
        self.scheduler_port = port
        self._spawn("kube-scheduler", [*self._component_flags(), f"--secure-port={port}"])

    def _start_kwok(self) -> None:
        port = _free_port()
        self.kwok_port = port
        stages = self.workdir / "kwok-stages.yaml"  # kwokctl's default stages, from the same KWOK module
        printed = subprocess.run([self.binary("kwok-stages")], check=True, capture_output=True, text=True)
        # plus the lorax container's fault stage (inert unless a test annotates a pod: kwok_faults.py)
        from loraxkit.testcluster import kwok_faults  # here, not at the top: keeps this hook one hunk

        stages.write_text(printed.stdout + "---\n" + kwok_faults.STAGE)
        self._spawn(
            "kwok",
            [
                f"--config={stages}",
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{port}",
            ],
        )

    def _wait_components(self, timeout: float) -> None:
        for name, port in (
            ("kube-controller-manager", self.kcm_port),
            ("kube-scheduler", self.scheduler_port),
        ):
            self._wait(
                lambda p=port: _https_status(f"https://127.0.0.1:{p}/healthz") == 200,
                f"{name} /healthz",
                timeout,
            )
        self._wait(
            lambda: _http_status(f"http://127.0.0.1:{self.kwok_port}/healthz") == 200,
            "kwok /healthz",
            timeout,
        )
        # The ServiceAccount controller and token signing work once `default` exists in `default`.
        self._wait(
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            "the default ServiceAccount (kube-controller-manager)",
            timeout,
        )

    # -- helpers -------------------------------------------------------------------------------------

    def _get(self, path: str) -> int:
        request = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        context = (
            ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file.exists() else _insecure()
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ssl.SSLError):
            return 0

    def _wait(self, ready: object, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.tail()}"
                    )
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready after {timeout:.0f} s\n{self.logs()}")


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only for health probes of loopback components we started
    return context


def _https_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, context=_insecure(), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ssl.SSLError):
        return 0


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0
