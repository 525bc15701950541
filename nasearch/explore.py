"""The notebooks' API, kept importable here: it lives in `nasearch.app.explore` (the application layer)."""

import sys

from nasearch.app import explore as _explore

sys.modules[__name__] = _explore
