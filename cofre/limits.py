"""Every limit of the wire protocol, in one place.

The request models (``cofre.protocol``) carry these into their OpenAPI schemas (``maxItems``,
``maxLength``, ``maximum``), the services enforce them there, the clients size their batches
by them, and docs/architecture.md quotes them. A lowest layer: chunking and the value types
below the protocol need some of them too.
"""

from __future__ import annotations

# --- integers and times -----------------------------------------------------------------------
# Every integer on the wire fits a signed 64-bit column in SQLite and in other languages' JSON
# decoders; a larger one is refused as bad input, never overflows later.
MAX_INT = 2**63 - 1

# --- names and ids --------------------------------------------------------------------------------
# A backup name is data, never a path: any text without NUL, at most this many bytes of UTF-8,
# which keeps catalog rows and query strings bounded.
MAX_NAME_BYTES = 4096
# A node id: a pod name (a DNS label or subdomain) or node-N.
MAX_NODE_ID_CHARS = 253
# An upload id: minted by the manager (24 URL-safe characters) or by a drain copy.
MAX_UPLOAD_ID_CHARS = 200
# A node URL a manager or a primary hands on.
MAX_URL_CHARS = 2048
# A signed ticket: its payload names at most MAX_REPLICAS + 1 nodes.
MAX_TICKET_CHARS = 16384

# An upload session's lifetime at most (a node refuses a relay session expiring later): a day
# covers any single upload; a session that never expired would be kept in memory for good.
MAX_SESSION_TTL_S = 86_400

# --- snapshots -----------------------------------------------------------------------------------
# A path inside a snapshot's tree (UTF-8 bytes), and a symlink's target: Linux's PATH_MAX.
MAX_PATH_BYTES = 4096
# Tree entries one request carries (a batch sent while a snapshot is open) or one page returns.
MAX_ENTRY_BATCH = 1000
# Source paths one snapshot records (what `cofre put` was given).
MAX_SNAPSHOT_PATHS = 256
# Tags one snapshot carries, and the characters of one tag.
MAX_SNAPSHOT_TAGS = 64
MAX_TAG_CHARS = 128
# A host name as the client reports it (a DNS name at most).
MAX_HOST_CHARS = 253

# --- sizes ----------------------------------------------------------------------------------------
# 1 PiB: far above any real file, low enough that arithmetic on reservations stays sane.
MAX_UPLOAD_BYTES = 1 << 50
# A chunk body: nodes refuse larger ones; a chunk never exceeds the configured chunk size.
MAX_CHUNK_SIZE = 64 * 1024 * 1024
# A framed batch of chunks (cofre.protocol.framing): chunks and bytes (header included).
MAX_FRAMED_CHUNKS = 1024
MAX_FRAMED_BYTES = 32 * 1024 * 1024
# The chunks one framed read answer carries: half the framed limit, leaving room for the
# header; the client asks again for the chunks left out.
MAX_READ_BYTES = MAX_FRAMED_BYTES // 2
# The framed header line: MAX_FRAMED_CHUNKS entries of about 80 bytes each, with slack.
MAX_FRAMED_HEADER_BYTES = 128 * 1024
# A JSON body to a node: MAX_HASHES quoted hex hashes with separators (and a check's chunk
# lengths, at most 9 characters each), and some slack.
MAX_NODE_JSON_BYTES = 8 * 1024 * 1024
# A JSON body to the manager: a batch commit of MAX_BATCH_FILES manifests, or one manifest of
# a 1 PiB file at 4 MiB chunks (about 20 MB).
MAX_MANAGER_JSON_BYTES = 64 * 1024 * 1024

# A request line (method, path and query string): the longest query the models allow (two tree
# paths of MAX_PATH_BYTES, each byte percent-encoded as three characters) fits with room to
# spare; aiohttp's default of 8190 would refuse it with a bare text answer.
MAX_REQUEST_LINE_BYTES = 64 * 1024

# --- counts per request ---------------------------------------------------------------------------
# Hashes in one JSON request to a node (check, read, delete): a 400 GiB file at 4 MiB chunks.
MAX_HASHES = 100_000
# Files one upload may declare, and manifests one commit or one manifests query may carry: a
# batch of small files shares one session, relay and commit.
MAX_BATCH_FILES = 1000
# Chunk hashes one `known` request may ask about: 4096 chunks of 4 MiB is 16 GiB of file.
MAX_KNOWN_HASHES = 4096
# Chunks in one manifest: a 1 PiB file at 4 MiB chunks.
MAX_MANIFEST_CHUNKS = 1 << 28
# Sources one pull may try, and replicas one relay session may fan out to.
MAX_SOURCES = 32
MAX_REPLICAS = 64
# Node ids in one drain request.
MAX_DRAIN_NODES = 1000

# --- what clients send per request (each within the limits above) ---------------------------------
# Hashes per check or delete request: keeps request bodies around 70 KB.
CHECK_BATCH = 1000
# Scrub findings a node keeps to report (the latest ones); the manager reads them every probe,
# and one that missed some runs a repair of the node's chunks instead.
MAX_SCRUB_FINDINGS = 100
