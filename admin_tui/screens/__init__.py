"""The console's screens: one per resource, k9s style, one module per screen family.

:mod:`.base` holds :class:`ResourceScreen` and the table helpers every screen shares;
this package re-exports every screen so ``from admin_tui.screens import ...`` keeps working.
"""

from admin_tui.screens.accounts import AccountScreen, AccountsScreen, KeysScreen
from admin_tui.screens.base import ResourceScreen, fill, selected_key
from admin_tui.screens.layout import LayoutScreen
from admin_tui.screens.nodes import NodeScreen, NodesScreen
from admin_tui.screens.overview import OverviewScreen
from admin_tui.screens.trace import TraceFilter, TraceScreen
from admin_tui.screens.webhooks import WebhooksScreen
from admin_tui.screens.workers import WorkersScreen

__all__ = [
    "AccountScreen",
    "AccountsScreen",
    "KeysScreen",
    "LayoutScreen",
    "NodeScreen",
    "NodesScreen",
    "OverviewScreen",
    "ResourceScreen",
    "TraceFilter",
    "TraceScreen",
    "WebhooksScreen",
    "WorkersScreen",
    "fill",
    "selected_key",
]
