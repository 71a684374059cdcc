"""The version of every distribution in the forbear workspace: the one place it is written.

The core and each adapter read it at build time (``[tool.hatch.version]`` in each
``pyproject.toml``); the adapters depend on the core's compatible range, ``>=X.Y,<X.Y+1``.
"""

__version__ = "0.2.0"
