"""forbear-aiohttp: RetryMiddleware for aiohttp client sessions."""
