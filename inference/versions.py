"""The version tokens live in ``knowledge.versions`` (the lowest layer); re-exported here for callers in inference."""

from knowledge.versions import DISCLAIMER, KNOWLEDGE, RULES, UNKNOWN, bump, current

__all__ = ["DISCLAIMER", "KNOWLEDGE", "RULES", "UNKNOWN", "bump", "current"]
