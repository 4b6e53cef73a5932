"""Logging and, later, metrics: what operators see. Never what clients see."""
