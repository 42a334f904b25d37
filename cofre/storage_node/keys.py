"""Typed application keys of the storage node app."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from cofre.config import NodeConfig
from cofre.storage_node.relay_sessions import SessionRegistry
from cofre.storage_node.scrub import Scrubber
from cofre.storage_node.store import ChunkStore

CONFIG = web.AppKey("config", NodeConfig)
STORE = web.AppKey("store", ChunkStore)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SESSIONS = web.AppKey("sessions", SessionRegistry)
SCRUBBER = web.AppKey("scrubber", Scrubber)
