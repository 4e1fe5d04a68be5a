"""ctest's entry for python/tests: `python3 -m pytest` on this folder, or
exit 77 (ctest: skipped) naming what is missing instead of failing or
passing silently."""

import sys

SKIP = 77

try:
    import pytest
except ImportError:
    print(f"SKIPPED: pytest is not installed for {sys.executable} (apt-get install python3-pytest)")
    sys.exit(SKIP)
try:
    import numpy  # noqa: F401
except ImportError:
    print(f"SKIPPED: numpy is not installed for {sys.executable} (apt-get install python3-numpy)")
    sys.exit(SKIP)

sys.exit(pytest.main(["-p", "no:cacheprovider", "-v"] + sys.argv[1:]))
