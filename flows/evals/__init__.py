"""Reported evaluation results: the metric vocabulary and the importers behind ``wwhub evals import``."""
