"""Start, stop and poke the dev cluster: etcd, the control plane, CoreDNS, kube-proxy and K
nodes, each a real kubelet with its own containerd, bridge and pod subnet, all on this host."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devcluster import config, pki, procs
from devcluster.api import Api, ApiError

PKI_DIR = config.STATE_DIR / "pki"
CONF_DIR = config.STATE_DIR / "conf"
INFO_FILE = config.STATE_DIR / "cluster.json"
IMAGE_CACHE = Path.home() / ".cache" / "cofre" / "images"
PAUSE_TAR = IMAGE_CACHE / "pause.tar"
BASE_TAR = IMAGE_CACHE / "python-base-image.tar"
CONTAINERS_CONF = config.PACKAGE_DIR / "containers.conf"
# Which checkout's cluster owns the host-wide parts (addresses, ports, sockets, bridges).
OWNER_FILE = config.RUN_DIR / "owner"
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")


class ClusterError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"devcluster: {msg}", file=sys.stderr, flush=True)


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Poll CHECK until it holds or TIMEOUT seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ClusterError:
            raise
        except Exception:  # a component not up yet answers with all sorts of errors
            pass
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


def run(
    argv: Sequence[str],
    check: bool = True,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=full_env,
        input=None if input is None else input.decode(),
    )
    if check and proc.returncode != 0:
        raise ClusterError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    return proc


def _build_binaries() -> Path:
    out = subprocess.run(
        ["bash", str(config.PACKAGE_DIR / "build.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


class Cluster:
    """Handle on the dev cluster. Methods are safe to call from tests and from the CLI."""

    def __init__(self, node_count: int | None = None) -> None:
        info = self._read_info()
        count = node_count or (info.get("nodes") if info else None) or config.node_count()
        self.nodes = config.nodes(int(count))
        self.kubeconfig = config.KUBECONFIG
        bin_dir = info.get("bin_dir") if info else None
        self._bin_dir = Path(bin_dir) if bin_dir else None

    # ---- information -------------------------------------------------------------------

    @staticmethod
    def _read_info() -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(INFO_FILE.read_text())
            return data
        except (OSError, ValueError):
            return None

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = _build_binaries()
        return self._bin_dir

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def env(self) -> dict[str, str]:
        """Environment for kubectl and helm against this cluster."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(config.STATE_DIR / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(config.STATE_DIR / "helm" / "config"),
            "HELM_DATA_HOME": str(config.STATE_DIR / "helm" / "data"),
        }

    def is_healthy(self) -> bool:
        if not self.kubeconfig.exists() or not (PKI_DIR / "admin.crt").exists():
            return False
        if not Api(timeout=3).healthy():
            return False
        try:
            nodes = Api(timeout=3).get("/api/v1/nodes")["items"]
        except (OSError, ApiError):
            return False
        ready = {n["metadata"]["name"] for n in nodes if _node_ready(n)}
        return all(n.name in ready for n in self.nodes if procs.running_pid(f"kubelet-{n.name}"))

    # ---- kubectl / helm ------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("kubectl", args, check, input, timeout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("helm", args, check, None, timeout)

    def _tool(
        self, tool: str, args: Sequence[str], check: bool, input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            input=input,
            env={**os.environ, **self.env()},
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    # ---- start -------------------------------------------------------------------------

    def up(self, timeout: float = 300) -> None:
        with _host_lock():
            self._locked_up(timeout)

    def _locked_up(self, timeout: float) -> None:
        if os.geteuid() != 0:
            raise ClusterError("the dev cluster needs root (containers, bridges, iptables)")
        if self.is_healthy() and procs.running_pid("kube-apiserver"):
            log("already running")
            return
        if other := _other_owner():
            raise ClusterError(
                f"another dev cluster runs on this host (state in {other}); one at a time: "
                f"stop it first with `make dev-cluster-down` in {Path(other).parent}"
            )
        if procs.names():
            log("an earlier start left processes behind but is not healthy: cleaning up first")
            self.down()
        _reclaim_host()
        started = time.monotonic()
        try:
            self._up(timeout)
        except BaseException:
            log(f"start failed: stopping what was started; logs stay in {procs.LOG_DIR}")
            self.down()
            raise
        log(f"cluster ready in {time.monotonic() - started:.0f}s")

    def _up(self, timeout: float) -> None:
        subprocess.run(["bash", str(config.PACKAGE_DIR / "setup.sh")], check=True)
        self._bin_dir = _build_binaries()
        self._images_base()
        self._prepare_state()
        OWNER_FILE.write_text(str(config.STATE_DIR))
        self._host_network()
        pki.ensure_pki(PKI_DIR, self.nodes)
        self._write_configs()
        INFO_FILE.write_text(json.dumps({"nodes": len(self.nodes), "bin_dir": str(self.bin_dir)}))

        self._start_etcd()
        self._start_apiserver()
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(self._start_containerd, self.nodes))
        wait_for(
            "kube-apiserver /readyz",
            lambda: _running("kube-apiserver") and Api(timeout=3).healthy(),
            90,
            on_timeout=lambda: procs.log_tail("kube-apiserver"),
        )
        self._bootstrap_objects()
        self._start_controllers()
        for node in self.nodes:
            self._start_kubelet(node, wait_socket=True)
        self._wait_ready(timeout)

    def _prepare_state(self) -> None:
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        logs = procs.LOG_DIR
        if logs.is_dir():
            prev = config.STATE_DIR / "logs.prev"
            shutil.rmtree(prev, ignore_errors=True)
            logs.rename(prev)
        for d in (CONF_DIR, procs.PID_DIR, procs.LOG_DIR, config.RUN_DIR):
            d.mkdir(parents=True, exist_ok=True)

    def _host_network(self) -> None:
        for ip in [config.API_IP, *(n.ip for n in self.nodes)]:
            proc = run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=False)
            exists = "File exists" in proc.stderr or "already" in proc.stderr
            if proc.returncode != 0 and not exists:
                raise ClusterError(f"cannot add {ip} to lo: {proc.stderr}")

    def _images_base(self) -> None:
        images = str(config.PACKAGE_DIR / "images.sh")
        subprocess.run(["bash", images, "pause", str(self.bin_dir)], check=True)
        subprocess.run(["bash", images, "base"], check=True)
        for image, tar in ((config.PAUSE_IMAGE, PAUSE_TAR), (config.BASE_IMAGE, BASE_TAR)):
            if tar.exists():
                continue
            IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
            run(
                ["podman", "save", "--format", "docker-archive", "-o", f"{tar}.tmp", image],
                env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
            )
            Path(f"{tar}.tmp").rename(tar)

    def _write_configs(self) -> None:
        for name in (
            "admin",
            "controller-manager",
            "scheduler",
            "kube-proxy",
            "coredns",
            *(n.name for n in self.nodes),
        ):
            pki.write_kubeconfig(CONF_DIR / f"{name}.kubeconfig", PKI_DIR, name)
        shutil.copyfile(CONF_DIR / "admin.kubeconfig", self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        # Pods get only the cluster's DNS server and search domains, never the host's.
        (CONF_DIR / "resolv.conf").write_text("")
        (CONF_DIR / "scheduler.yaml").write_text(f"""\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {CONF_DIR / "scheduler.kubeconfig"}
leaderElection:
  leaderElect: false
""")
        (CONF_DIR / "kube-proxy.yaml").write_text(f"""\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {CONF_DIR / "kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: {config.POD_CIDR}
hostnameOverride: {self.nodes[0].name}
healthzBindAddress: 127.0.0.1:{config.PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:{config.PROXY_METRICS_PORT}
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 0s
  syncPeriod: 10s
""")
        # Only cluster.local is answered: no forwarding to resolvers outside this machine.
        (CONF_DIR / "Corefile").write_text(f"""\
.:53 {{
    errors
    health 127.0.0.1:{config.COREDNS_HEALTH_PORT}
    ready 127.0.0.1:{config.COREDNS_READY_PORT}
    kubernetes {config.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {CONF_DIR / "coredns.kubeconfig"} cofre-dev
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
""")
        for node in self.nodes:
            self._write_node_configs(node)

    def _write_node_configs(self, node: config.NodeSpec) -> None:
        d = node.state_dir
        for sub in ("containerd", "kubelet", "cni", "ipam", "pod-logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        node.run_dir.mkdir(parents=True, exist_ok=True)
        (d / "cni" / "10-cofre.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": f"cofre-{node.name}",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": node.bridge,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": node.pod_subnet, "gateway": node.gateway}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(d / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )
        (d / "containerd.toml").write_text(f"""\
version = 2
root = "{d / "containerd"}"
state = "{node.run_dir / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{node.containerd_socket}"
[ttrpc]
  address = "{node.containerd_socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "containerd" / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{config.PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Lowering oom_score_adj needs a capability this host's root lacks.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        SystemdCgroup = false
        Root = "{node.run_dir / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d / "cni"}"
    max_conf_num = 1
""")
        (d / "kubelet.yaml").write_text(f"""\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node.ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {node.healthz_port}
tlsCertFile: {PKI_DIR / f"{node.name}-serving.crt"}
tlsPrivateKeyFile: {PKI_DIR / f"{node.name}-serving.key"}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {PKI_DIR / "ca.crt"}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://{node.containerd_socket}
# Hybrid cgroups v1+v2 on this host, and several kubelets share it: no QoS cgroup tree of
# their own (each would garbage-collect the others' pod cgroups).
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDomain: {config.CLUSTER_DOMAIN}
clusterDNS: [{config.DNS_IP}]
resolvConf: {CONF_DIR / "resolv.conf"}
podLogsDir: {d / "pod-logs"}
maxPods: 60
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 30s
syncFrequency: 10s
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
shutdownGracePeriod: 0s
""")

    def _start_etcd(self) -> None:
        data = config.STATE_DIR / "etcd"
        peer = f"http://127.0.0.1:{config.ETCD_PEER_PORT}"
        client = f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}"
        procs.start(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=devcluster",
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=devcluster={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        p = PKI_DIR
        procs.start(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{config.ETCD_CLIENT_PORT}",
                f"--advertise-address={config.API_IP}",
                f"--bind-address={config.API_IP}",
                f"--secure-port={config.API_PORT}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                f"--service-cluster-ip-range={config.SERVICE_CIDR}",
                f"--service-account-issuer=https://kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                # Pods of a stopped node are evicted after 30 s rather than 5 minutes.
                "--default-not-ready-toleration-seconds=30",
                "--default-unreachable-toleration-seconds=30",
                f"--cert-dir={config.STATE_DIR / 'apiserver'}",
                "--profiling=false",
                "--v=1",
            ],
        )
        # etcd must answer before the apiserver gives up on its storage.
        wait_for(
            "etcd",
            lambda: (
                _running("etcd") and _http_ok(f"http://127.0.0.1:{config.ETCD_CLIENT_PORT}/health")
            ),
            30,
            on_timeout=lambda: procs.log_tail("etcd"),
        )

    def _start_containerd(self, node: config.NodeSpec) -> None:
        name = f"containerd-{node.name}"
        # Nothing is ever pulled: any registry request goes to a closed local port, so a
        # missing image ends in ErrImagePull/ImagePullBackOff (ErrImageNeverPull with
        # imagePullPolicy: Never) instead of leaving this machine.
        procs.start(
            name,
            ["containerd", "--config", str(node.state_dir / "containerd.toml")],
            env={
                "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "",
                "http_proxy": "http://127.0.0.1:9",
                "https_proxy": "http://127.0.0.1:9",
                "no_proxy": "",
            },
        )
        wait_for(
            f"{name} socket",
            lambda: self._ctr(node, "version").returncode == 0,
            30,
            on_timeout=lambda: procs.log_tail(name),
        )
        present = self._ctr(node, "images", "ls", "-q").stdout.split()
        for image, tar in ((config.PAUSE_IMAGE, PAUSE_TAR), (config.BASE_IMAGE, BASE_TAR)):
            if image not in present:
                self._ctr(node, "images", "import", str(tar), check=True)

    def _ctr(
        self, node: config.NodeSpec, *args: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return run(
            ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io", *args],
            check=check,
        )

    def _start_controllers(self) -> None:
        p, c = PKI_DIR, CONF_DIR
        kcm_kc = c / "controller-manager.kubeconfig"
        procs.start(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={config.SERVICE_CIDR}",
                f"--cluster-cidr={config.POD_CIDR}",
                "--allocate-node-cidrs=false",
                "--controllers=*",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={config.CONTROLLER_MANAGER_PORT}",
                # A stopped node turns NotReady within about 20 s.
                "--node-monitor-grace-period=20s",
                "--node-monitor-period=2s",
                "--v=1",
            ],
        )
        sch_kc = c / "scheduler.kubeconfig"
        procs.start(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--config={c / 'scheduler.yaml'}",
                f"--authentication-kubeconfig={sch_kc}",
                f"--authorization-kubeconfig={sch_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={config.SCHEDULER_PORT}",
                "--v=1",
            ],
        )
        procs.start(
            "kube-proxy",
            [
                str(self.bin_dir / "kube-proxy"),
                f"--config={c / 'kube-proxy.yaml'}",
                "--v=1",
            ],
        )
        procs.start("coredns", [str(self.bin_dir / "coredns"), "-conf", str(c / "Corefile")])
        procs.start(
            "provisioner",
            [sys.executable, "-m", "devcluster", "provisioner"],
            env={"PYTHONPATH": str(config.REPO_ROOT)},
        )

    def _start_kubelet(self, node: config.NodeSpec, wait_socket: bool = False) -> None:
        d = node.state_dir
        before = _identity(DEVICE_PLUGIN_SOCKET)
        procs.start(
            f"kubelet-{node.name}",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={d / 'kubelet.yaml'}",
                f"--kubeconfig={CONF_DIR / f'{node.name}.kubeconfig'}",
                f"--hostname-override={node.name}",
                f"--node-ip={node.ip}",
                f"--root-dir={d / 'kubelet'}",
                f"--node-labels=topology.kubernetes.io/zone={node.zone}",
                "--v=1",
            ],
        )
        if wait_socket:
            # Every kubelet binds the same device-plugin socket (a fixed path), replacing the
            # one before; two binding at once fail. So one kubelet at a time, until it has.
            wait_for(
                f"kubelet on {node.name} to start its container manager",
                lambda: (
                    _running(f"kubelet-{node.name}")
                    and _identity(DEVICE_PLUGIN_SOCKET) not in (None, before)
                ),
                30,
                interval=0.2,
                on_timeout=lambda: procs.log_tail(f"kubelet-{node.name}"),
            )

    def _bootstrap_objects(self) -> None:
        self.kubectl("apply", "-f", str(config.PACKAGE_DIR / "manifests" / "bootstrap.yaml"))

    def _wait_ready(self, timeout: float) -> None:
        api = Api(timeout=5)

        def nodes_ready() -> bool:
            for node in self.nodes:
                _running(f"kubelet-{node.name}")
            items = api.get("/api/v1/nodes")["items"]
            ready = {n["metadata"]["name"] for n in items if _node_ready(n)}
            return all(n.name in ready for n in self.nodes)

        def tails() -> str:
            return "\n".join(f"--- {n}\n{procs.log_tail(n, 15)}" for n in procs.names())

        wait_for("all nodes Ready", nodes_ready, timeout, on_timeout=tails)
        wait_for(
            "CoreDNS ready",
            lambda: _http_ok(f"http://127.0.0.1:{config.COREDNS_READY_PORT}/ready"),
            60,
            on_timeout=lambda: procs.log_tail("coredns"),
        )
        wait_for(
            "kube-proxy healthy",
            lambda: _http_ok(f"http://127.0.0.1:{config.PROXY_HEALTHZ_PORT}/healthz"),
            60,
            on_timeout=lambda: procs.log_tail("kube-proxy"),
        )
        wait_for(
            "default service account",
            lambda: bool(api.get("/api/v1/namespaces/default/serviceaccounts/default")),
            60,
            on_timeout=lambda: procs.log_tail("kube-controller-manager"),
        )

    # ---- faults ------------------------------------------------------------------------

    def _node(self, name: str) -> config.NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"no node {name!r}; nodes are {', '.join(self.node_names)}")

    def stop_node(self, name: str) -> None:
        """Crash a node: its kubelet dies and all its containers are killed. The Lease is no
        longer renewed, the node turns NotReady and its pods are evicted as usual."""
        node = self._node(name)
        procs.stop(f"kubelet-{node.name}", grace=0, sig=signal.SIGKILL)
        self._kill_all_tasks(node)

    def start_node(self, name: str) -> None:
        node = self._node(name)
        if not procs.running_pid(f"containerd-{node.name}"):
            self._start_containerd(node)
        self._start_kubelet(node)

    def _kill_all_tasks(self, node: config.NodeSpec) -> None:
        if not procs.running_pid(f"containerd-{node.name}"):
            return
        for line in self._ctr(node, "tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and (len(fields) < 3 or fields[2] != "STOPPED"):
                self._ctr(node, "tasks", "kill", "--signal", "SIGKILL", fields[0])

    def kill_container(self, namespace: str, pod: str, container: str | None = None) -> str:
        """SIGKILL one container of a pod (its first one by default); returns its id."""
        obj = Api().get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        statuses = obj.get("status", {}).get("containerStatuses") or []
        for st in statuses:
            if container is None or st["name"] == container:
                cid = str(st.get("containerID", ""))
                if not cid:
                    break
                cid = cid.split("://", 1)[-1]
                node = self._node(obj["spec"]["nodeName"])
                self._ctr(node, "tasks", "kill", "--signal", "SIGKILL", cid, check=True)
                return cid
        raise ClusterError(f"pod {namespace}/{pod} has no running container {container or ''}")

    # ---- images ------------------------------------------------------------------------

    def load_image(self, tag: str) -> None:
        """Copy a podman image into every node's containerd."""
        with tempfile.TemporaryDirectory(dir=config.STATE_DIR) as tmp:
            tar = Path(tmp) / "image.tar"
            run(
                ["podman", "save", "--format", "docker-archive", "-o", str(tar), tag],
                env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
            )
            for node in self.nodes:
                if procs.running_pid(f"containerd-{node.name}"):
                    self._ctr(node, "images", "import", str(tar), check=True)

    def build_image(self, tag: str, context_dir: Path) -> None:
        """podman build CONTEXT_DIR/Dockerfile as TAG (FROM images resolve locally only)."""
        subprocess.run(
            ["bash", str(config.PACKAGE_DIR / "images.sh"), "build", tag, str(context_dir)],
            check=True,
        )

    # ---- stop --------------------------------------------------------------------------

    def down(self) -> None:
        """Stop everything the cluster started and remove its state; idempotent."""
        with _host_lock():
            self._locked_down()

    def _locked_down(self) -> None:
        other = _other_owner()
        for node in self.nodes:
            procs.stop(f"kubelet-{node.name}", grace=5)
        for node in self.nodes:
            if other is None:
                self._remove_containers(node)
            else:
                procs.stop(f"containerd-{node.name}")
        for name in (
            "provisioner",
            "coredns",
            "kube-proxy",
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
            "etcd",
        ):
            procs.stop(name)
        for name in procs.names():  # anything left from an older layout
            procs.stop(name)
        for pid in procs.leftover_components(config.STATE_DIR):
            log(f"stopping a component left without a pid file: pid {pid}")
            procs.kill_pid(pid, grace=5)
        if other is None:
            self._cleanup_host()
        else:
            log(f"the host's network belongs to the dev cluster in {other}: left alone")
        log("stopped")

    def _remove_containers(self, node: config.NodeSpec) -> None:
        name = f"containerd-{node.name}"
        if procs.running_pid(name):
            self._kill_all_tasks(node)
            for cid in self._ctr(node, "tasks", "ls", "-q").stdout.split():
                self._ctr(node, "tasks", "delete", "--force", cid)
            for cid in self._ctr(node, "containers", "ls", "-q").stdout.split():
                self._ctr(node, "containers", "delete", cid)
        procs.stop(name)
        # Shims of containers that containerd no longer tracks.
        for pid in procs.pids_with_arg(str(node.containerd_socket)):
            procs.kill_pid(pid, grace=2, sig=signal.SIGKILL)

    def _cleanup_host(self) -> None:
        kube_proxy = (self._bin_dir or Path("/nonexistent")) / "kube-proxy"
        if kube_proxy.exists():
            run([str(kube_proxy), "--cleanup"], check=False)
        # Pod network namespaces left by sandboxes whose teardown never ran.
        netns_dir = Path("/run/netns")
        if netns_dir.is_dir():
            for ns in netns_dir.glob("cni-*"):
                addrs = run(["ip", "-n", ns.name, "-4", "-o", "addr"], check=False).stdout
                if " 10.244." in addrs or not addrs.strip():
                    run(["ip", "netns", "delete", ns.name], check=False)
        for node in self.nodes:
            run(["ip", "link", "delete", node.bridge], check=False)
        _remove_kubelet_iptables()
        _remove_empty_cgroups("k8s.io")
        for ip in [config.API_IP, *(n.ip for n in self.nodes)]:
            run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False)
        _unmount_under(config.STATE_DIR)
        _unmount_under(config.RUN_DIR)
        for entry in list(config.STATE_DIR.iterdir()) if config.STATE_DIR.is_dir() else []:
            if entry.name not in ("logs", "logs.prev", "pki"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        shutil.rmtree(config.RUN_DIR, ignore_errors=True)


# One start or stop at a time on this host: a start that overlapped a stop still finishing
# found half-stopped components and left them running.
HOST_LOCK = Path("/run/cofre-devcluster.lock")
_lock_depth = 0


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Held by up and down (re-entrant: a failed up calls down); others wait for it."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    with HOST_LOCK.open("a") as f:
        if not _try_lock(f):
            log("waiting for another start or stop of a dev cluster on this host")
            fcntl.flock(f, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(f, fcntl.LOCK_UN)


def _try_lock(f: Any) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file PATH is now: a re-created file may reuse the inode number, not the ctime."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_ctime_ns)


def _running(name: str) -> bool:
    """True if NAME runs; a component that died while starting fails the start at once."""
    if procs.running_pid(name) is None:
        raise ClusterError(f"{name} exited:\n{procs.log_tail(name)}")
    return True


def _other_owner() -> str | None:
    """The state dir of a dev cluster from another checkout still running here, if any."""
    try:
        owner = OWNER_FILE.read_text().strip()
    except OSError:
        return None
    if not owner or owner == str(config.STATE_DIR):
        return None
    for pid_file in (Path(owner) / "pids").glob("*.pid"):
        if procs.read_pid_file(pid_file) is not None:
            return owner
    return None


def _reclaim_host() -> None:
    """Clear what a cluster killed without `down` left in the host-wide places: shims and
    mounts of its containers, the runtime state, mounts under its state dir."""
    try:
        stale_owner = OWNER_FILE.read_text().strip()
    except OSError:
        stale_owner = ""
    for pid in procs.pids_with_arg(str(config.RUN_DIR) + "/"):
        procs.kill_pid(pid, grace=0, sig=signal.SIGKILL)
    # Containers whose shims were killed: containerd puts them in k8s.io cgroups.
    for procs_file in Path("/sys/fs/cgroup/pids/k8s.io").glob("*/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            for pid in map(int, procs_file.read_text().split()):
                procs.kill_pid(pid, grace=0, sig=signal.SIGKILL)
    _remove_empty_cgroups("k8s.io")
    _unmount_under(config.RUN_DIR)
    shutil.rmtree(config.RUN_DIR, ignore_errors=True)
    if stale_owner and stale_owner != str(config.STATE_DIR):
        _unmount_under(Path(stale_owner))


def _unmount_under(root: Path) -> None:
    prefix = str(root)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(
        (p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True
    ):
        run(["umount", "-l", point], check=False)


def _remove_kubelet_iptables() -> None:
    """The chains kubelets add on start (kube-proxy --cleanup removes its own)."""
    for tool in ("iptables", "ip6tables"):
        for chain in ("INPUT", "OUTPUT"):
            while run([tool, "-D", chain, "-j", "KUBE-FIREWALL"], check=False).returncode == 0:
                pass
        for table, chain in (
            ("filter", "KUBE-FIREWALL"),
            ("filter", "KUBE-KUBELET-CANARY"),
            ("nat", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-KUBELET-CANARY"),
            ("mangle", "KUBE-IPTABLES-HINT"),
        ):
            run([tool, "-t", table, "-F", chain], check=False)
            run([tool, "-t", table, "-X", chain], check=False)


def _remove_empty_cgroups(name: str) -> None:
    """containerd's per-namespace cgroup parents, once no container is left in them."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        # Deepest first: a cgroup directory can only be removed once it has no children.
        dirs = sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, parent]:
            with contextlib.suppress(OSError):  # still in use
                d.rmdir()


def _node_ready(node: dict[str, Any]) -> bool:
    for cond in node.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            return bool(cond["status"] == "True")
    return False


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
