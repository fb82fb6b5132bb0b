"""The market engine: the plain actor classes and the messages they exchange (never Ray)."""
