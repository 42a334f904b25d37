"""The storage node: a content-addressed chunk store with an upload relay, over HTTP."""

from cofre.storage_node.app import create_app

__all__ = ["create_app"]
