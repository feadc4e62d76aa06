"""Metric families: pure functions over arrays and frames, with no knowledge of competitions."""
