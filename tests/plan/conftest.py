"""Planner tests: helpers live in plan_helpers.py (a unique module name beside other conftests)."""

import plan_helpers  # noqa: F401
