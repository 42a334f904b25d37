"""Command line: python -m devcluster up|down|status|env|stop-node|start-node|kill-container|
load-image|build-image|provisioner."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devcluster import config
from devcluster.cluster import Cluster, ClusterError


def _usage(cluster: Cluster) -> str:
    return (
        f"dev cluster ready: {len(cluster.nodes)} nodes ({', '.join(cluster.node_names)}), "
        f"Kubernetes {config.K8S_VERSION}\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f"  export PATH={cluster.bin_dir}:$PATH\n"
        "  kubectl get nodes; helm list -A\n"
        "  load an image into the nodes: make image  (or python -m devcluster load-image TAG)\n"
        "  stop it: make dev-cluster-down"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the cluster (returns once healthy)")
    up.add_argument("--nodes", type=int, default=None)
    sub.add_parser("down", help="stop the cluster and remove its containers and state")
    sub.add_parser("status", help="exit 0 if the cluster is healthy")
    sub.add_parser("env", help="print shell exports for kubectl and helm")
    for name in ("stop-node", "start-node"):
        sub.add_parser(name).add_argument("node")
    kill = sub.add_parser("kill-container", help="SIGKILL a container of a pod")
    kill.add_argument("pod")
    kill.add_argument("-n", "--namespace", default="default")
    kill.add_argument("-c", "--container", default=None)
    load = sub.add_parser("load-image", help="copy a podman image into every node")
    load.add_argument("tag")
    build = sub.add_parser("build-image", help="podman build DIR and load it into the nodes")
    build.add_argument("tag")
    build.add_argument("dir", type=Path)
    sub.add_parser("provisioner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        if args.cmd == "provisioner":
            from devcluster import provisioner

            provisioner.main()
            return 0
        cluster = Cluster(node_count=getattr(args, "nodes", None))
        if args.cmd == "up":
            cluster.up()
            print(_usage(cluster))
        elif args.cmd == "down":
            cluster.down()
        elif args.cmd == "status":
            healthy = cluster.is_healthy()
            print("healthy" if healthy else "not running or not healthy")
            return 0 if healthy else 1
        elif args.cmd == "env":
            for key, value in cluster.env().items():
                print(f"export {key}={value}")
        elif args.cmd == "stop-node":
            cluster.stop_node(args.node)
        elif args.cmd == "start-node":
            cluster.start_node(args.node)
        elif args.cmd == "kill-container":
            print(cluster.kill_container(args.namespace, args.pod, args.container))
        elif args.cmd == "load-image":
            cluster.load_image(args.tag)
        elif args.cmd == "build-image":
            cluster.build_image(args.tag, args.dir)
            if cluster.is_healthy():
                cluster.load_image(args.tag)
    except ClusterError as e:
        print(f"devcluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
