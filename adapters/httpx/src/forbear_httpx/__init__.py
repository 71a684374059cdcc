"""forbear-httpx: RetryTransport for httpx, sync and async (asyncio and trio)."""
