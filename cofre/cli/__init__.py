"""The `cofre` command: backs files up, restores them, and runs a local cluster."""
