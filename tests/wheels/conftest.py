"""The wheel checks run from `make wheel-check`, which builds dist/ first and names it in
``FORBEAR_DIST``; a plain pytest run of the workspace skips them."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("FORBEAR_DIST") else ["test_*.py"]
