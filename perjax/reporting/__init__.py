"""Reporting: a sweep's tables and figures, significance over seeds, and the analysis scripts
(compare, baseline_report, decision_rules). It reads finished runs' workdirs; the running side
(perjax.experiment, perjax.training, ...) never imports it (tests/test_running_reporting_split.py).
"""
