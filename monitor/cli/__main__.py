"""``python -m monitor.cli``: the same as the ``riskwatch`` command."""

from monitor.cli import main

main()
