"""The dev cluster's smoke tests. Importing the fixtures (rather than `pytest_plugins`) keeps this
conftest valid when pytest collects the whole tests/ tree."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from devcluster.pytest_plugin import dev_cluster, namespace  # noqa: F401
