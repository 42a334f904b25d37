"""Typed keys of the manager's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from cofre.config import ManagerConfig
from cofre.manager.context import Manager

CONFIG = web.AppKey("config", ManagerConfig)
MANAGER = web.AppKey("manager", Manager)
