"""Prefect flows: thin orchestration over the library. Each task calls one library function;
all decisions live in the library (``steward.policy``, ``embedding.gate``, ``monitoring``)."""
