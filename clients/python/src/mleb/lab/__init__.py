"""Benchmark run groups: the files `mleb run` writes and the reports `mleb report` builds."""
