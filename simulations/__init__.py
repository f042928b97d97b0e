"""Entry point, simulation engine start-up and reports."""

import os

# A platform for medical data sends nothing anywhere it was not asked to: switch off Flower's
# telemetry and Ray's usage statistics unless the user turned them on. Both are read when
# flwr and ray are first imported, which is why this sits in the package's first module.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
