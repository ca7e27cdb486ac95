"""Prefect flows: they orchestrate DVC stages and never compute (no torch imported here)."""
import os

# A busy 2-core machine can take longer than Prefect's default 20 s to start the temporary server.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# No telemetry from the temporary server (it also races the first migration on SQLite).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
