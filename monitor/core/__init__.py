"""The pure core: events in, findings and alerts out. No I/O here.

Event contract and decoding (``event``), column batches (``batch``), the rule
language (``rulelang``), the compiled pack (``rules``, ``detectorspec``,
``pack``), keyed state (``state``), the scorer and the detectors' runner
(``scorer``, ``detecting``, ``findings``), alerts and their evidence
(``alerts``, ``evidence``). It imports nothing else of riskwatch but
``detectors``, and no database, Kafka, HTTP or file-watching library
(``pyproject.toml``'s import contracts hold it to that).
"""
