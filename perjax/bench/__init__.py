"""Benchmarks behind `perjax bench`: each returns one JSON-able dict of figures."""
