"""The local web dashboard: calls (live and history), one call, totals by day."""

from patter_core.dashboard.auth import DashboardAuth, check_bind
from patter_core.dashboard.routes import Dashboard

__all__ = ["Dashboard", "DashboardAuth", "check_bind"]
