"""Helpers around the lorax Helm chart (render through the real Helm engine)."""
