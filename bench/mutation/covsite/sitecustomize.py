"""Loaded by every Python process of a coverage run (this folder is on PYTHONPATH): trace the target."""

from linetracer import start_tracer

start_tracer()
