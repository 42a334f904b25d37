"""The manager: discovery, probing, placement, catalog, commit, GC, fsck, drain."""

from cofre.manager.app import create_app

__all__ = ["create_app"]
