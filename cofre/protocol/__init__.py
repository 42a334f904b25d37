"""The wire protocol: HTTP/JSON between CLI, manager, nodes and operator.

``manager_api`` and ``node_api`` hold a model for every request and response body (``base``:
what they share); ``api`` declares routes with their models, parses at the edge and generates
the OpenAPI documents; ``server`` and ``auth`` hold the middleware both services put in front of
their handlers (``auth``: who may call what; ``access``: roles and keys); ``client`` holds
typed async clients; ``framing`` packs several chunks in one body.
"""
