"""The files analysts write: reading a rules folder (``rulefiles``), its embedded
tests (``ruletest``), coverage of the risk list (``coverage``), and hot reload
(``reload``).
"""
