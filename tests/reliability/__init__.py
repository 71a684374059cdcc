"""The reliability suite: hostile servers against every adapter, and the soak (`make soak`)."""
