"""riskwatch: streaming compliance-risk monitoring and early warning."""

__version__ = "0.1.0"
