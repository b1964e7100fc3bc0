"""The web UI, a module per page, each an ``APIRouter`` with its template in ``monitor/web/templates``."""
