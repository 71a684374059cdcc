"""forbear-requests: RetryAdapter for requests sessions."""
