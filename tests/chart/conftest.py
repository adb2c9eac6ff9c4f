"""Chart tests: the render helpers live in chart_helpers.py (a unique module name, so they never clash with
another folder's conftest); importing them here puts tests/chart on the import path for every test file."""

import chart_helpers  # noqa: F401
