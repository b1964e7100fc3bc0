"""Downloads: the violation record, typical cases, and tickets — exactly the inbox's filtered set.

    /exports/tickets.xlsx?grade=red&overdue=1      (the page: the inbox's own query string)
    /api/exports/tickets?format=csv&grade=red      (the API, with a token)

The file is written to a private temporary folder, sent, and removed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from fastapi import HTTPException
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from monitor.cases.auth import User
from monitor.cases.exports import COLUMNS, write_export
from monitor.cases.inbox import TicketFilter, select_filtered
from monitor.cases.schema import ticket_row
from monitor.web.site import Site

__all__ = ["export_response"]


def export_response(web: Site, user: User, kind: str, fmt: str, query: Mapping[str, str]) -> FileResponse:
    if kind not in COLUMNS or fmt not in ("csv", "xlsx"):
        raise HTTPException(404, "exports: violations, cases or tickets, as csv or xlsx")
    folder = Path(tempfile.mkdtemp(prefix="riskwatch-export-"))
    try:
        path = folder / f"{kind}.{fmt}"
        if kind == "tickets":
            chosen = TicketFilter.from_query(query)
            with Session(web.store.engine) as session:
                rows = session.scalars(select_filtered(web.pack, chosen, web.scope(user), web.clock(), web.orgs)
                                       .execution_options(yield_per=2000))
                write_export(path, kind, (ticket_row(t) for t in rows))
        else:
            write_export(path, kind, web.visible(user, web.store.export_rows(kind)))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, filename=path.name, background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
