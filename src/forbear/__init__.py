"""forbear: retries the way careful HTTP APIs ask for them."""
