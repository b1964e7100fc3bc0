"""What a rule or a detector reports: a ``Finding``, before it is merged into an alert. Pure.

>>> Finding("fin_payment_without_contract", ("ORG1", "FK-1"), ["e1"], 1.0, 1.0).event_ids
['e1']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding"]


@dataclass
class Finding:
    """One rule firing: the rule, its key, the events that made it, and the
    values its message uses. Business times are epoch seconds."""

    rule_id: str
    key: tuple
    event_ids: list[str]
    first_seen: float
    last_seen: float
    values: dict[str, Any] = field(default_factory=dict)
    score: float | None = None  # a detector's anomaly score; rules score by severity
