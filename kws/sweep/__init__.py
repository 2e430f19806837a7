"""Sweeps over training settings: spec, Ray tasks, report."""
