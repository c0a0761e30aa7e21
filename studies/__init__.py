"""Paper studies run through the cost model (not installed with the package; run from a checkout)."""
