"""Each area registers its own models; importing them here is what puts them in the admin."""

from governance.access import admin as access_admin  # noqa: F401
from governance.calendar import admin as calendar_admin  # noqa: F401
from governance.changes import admin as changes_admin  # noqa: F401
from governance.gate import admin as gate_admin  # noqa: F401
