"""Tools for analysts tuning rules: backtests, rule diffs, detector
evaluation, and the demo stream generator.
"""
