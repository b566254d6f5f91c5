"""Leaderboards: statistics, the correlations table, rendering and plots."""
