"""`forbear.testing`: an alias of `forbear_testing`, from the forbear-testing distribution.

``import forbear.testing`` gives the very module ``forbear_testing`` is, so both names share one
fault server, one set of emulators and one conformance suite. New code imports
``forbear_testing``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forbear_testing import *  # noqa: F403

try:
    import forbear_testing
except ModuleNotFoundError as exc:
    if exc.name != "forbear_testing":
        raise
    raise ImportError(
        "forbear.testing is the forbear-testing distribution: pip install forbear-testing"
    ) from None

sys.modules[__name__] = forbear_testing
