"""forbear-backoff: forbear's retry decisions inside the backoff library's decorators."""
