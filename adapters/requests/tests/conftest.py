"""Fixtures for the forbear-requests tests."""

from requests_raw_servers import cut_redirect, partial_server

__all__ = ["cut_redirect", "partial_server"]
