"""The ``riskwatch`` command line (contract 3).

riskwatch demo                      generate a stream, score it, open tickets, serve /metrics
riskwatch generate --out FILE       write the demo stream and its ground truth
riskwatch run --input F --alerts-out A [--rules DIR] [--db URL] [--rejected-out R]
riskwatch rules lint [DIR]          validate every file an analyst writes
riskwatch rules test [DIR]          run the test cases inside the rule files
riskwatch rules diff --base REV|DIR --events F   the alerts a rules change adds and removes
riskwatch rules coverage [DIR] [--events F]      risks with no live rule, rules that never fire, unused lists
riskwatch rules versions [--db URL]              the rule pack versions that have scored
riskwatch detectors list|train|evaluate   the anomaly detectors of rules/detectors.yaml
riskwatch tickets list|show|ack|investigate|resolve|close|reopen|assign|comment|case|escalate|export
riskwatch serve [--db URL]          the REST API and web UI; riskwatch users add|token manage its users
riskwatch report --month YYYY-MM    the monthly compliance report (XLSX and HTML)
riskwatch backtest --events F [--labels L] [--html R]   what the rules would have flagged, and how well
riskwatch schema                    print the event JSON Schema
"""

from monitor.cli import detectors, kafka, rules, run, serve, tickets  # noqa: F401 - each adds its commands
from monitor.cli.app import main

__all__ = ["main"]
