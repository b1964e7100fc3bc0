"""Disposal: ``riskwatch tickets ...``, ``report`` and ``users``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from monitor.cli.app import _db_option, _load_pack_or_exit, _now, _store, console, err_console, main

# --- tickets ----------------------------------------------------------------------------
@main.group()
def tickets() -> None:
    """Disposal tickets: list, show, move along the workflow, assign, comment, export."""


def _ticket_action(fn):
    """Run a store call; a TicketError or WorkflowError is a clear message and exit 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from monitor.cases.tickets import TicketError
        from monitor.cases.workflow import WorkflowError

        try:
            return fn(*args, **kwargs)
        except (TicketError, WorkflowError) as err:
            err_console.print(str(err), markup=False)
            sys.exit(1)
    return wrapper


@tickets.command("list")
@_db_option
@click.option("--status", type=click.Choice(["open", "acknowledged", "investigating", "resolved", "closed"]))
@click.option("--risk")
@click.option("--org")
@click.option("--department")
@click.option("--overdue", is_flag=True, help="Only tickets past their disposal deadline.")
def tickets_list(db, status, risk, org, department, overdue):
    """Tickets, newest first, by filter."""
    rows = _store(db).find(status, risk, org, department, _now() if overdue else None)
    t = Table(title=f"{len(rows)} ticket(s)")
    for c in ("id", "status", "risk", "severity", "org", "owner", "due", "escalated", "title"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["id"]), r["status"], r["risk_id"], r["severity"], r["org_id"] or "", r["owner_post"],
                  str(r["due_at"])[:16], f"{r['escalation_level']} → {r['escalated_to']}" if r["escalation_level"] else "",
                  r["title"])
    console.print(t)


@tickets.command("show")
@_db_option
@click.argument("ticket_id", type=int)
@_ticket_action
def tickets_show(db, ticket_id):
    """One ticket with its audit trail."""
    store = _store(db)
    r = store.get(ticket_id)
    for key in ("id", "status", "outcome", "title", "message", "risk_id", "severity", "org_id", "owner_post",
                "owner_department", "assignee", "event_ids", "opened_at", "ack_due_at", "due_at", "escalation_level",
                "escalated_to", "typical_case", "case_summary", "pack_version"):
        console.print(f"{key:>17}: {r[key]}", markup=False)
    console.print("audit trail:")
    for a in store.audit(ticket_id):
        move = f"{a['from_status'] or ''} → {a['to_status']}" if a["to_status"] else ""
        console.print(f"  {str(a['at'])[:19]}  {a['actor']:<16} {a['action']:<12} {move:<28} {a['reason'] or ''}", markup=False)


def _move_command(name: str, to: str, help_: str, with_outcome: bool = False):
    @tickets.command(name, help=help_)
    @_db_option
    @click.argument("ticket_id", type=int)
    @click.option("--as", "actor", required=True, help="Who does it (recorded in the audit trail).")
    @click.option("--reason", help="Why (recorded in the audit trail).")
    @click.option("--outcome", type=click.Choice(["confirmed_violation", "false_positive", "remediated"]),
                  required=with_outcome, hidden=not with_outcome)
    @_ticket_action
    def command(db, ticket_id, actor, reason, outcome):
        r = _store(db).move(ticket_id, to, actor, _now(), reason, outcome)
        console.print(f"ticket {ticket_id}: {r['status']}" + (f" ({r['outcome']})" if r["outcome"] else ""))
    return command


_move_command("ack", "acknowledged", "Acknowledge a ticket.")
_move_command("investigate", "investigating", "Start investigating a ticket.")
_move_command("resolve", "resolved", "Resolve a ticket with an outcome.", with_outcome=True)
_move_command("close", "closed", "Close a resolved ticket.")
_move_command("reopen", "open", "Reopen a resolved or closed ticket.")


@tickets.command("assign")
@_db_option
@click.argument("ticket_id", type=int)
@click.option("--to", "assignee", required=True)
@click.option("--as", "actor", required=True)
@click.option("--reason")
@_ticket_action
def tickets_assign(db, ticket_id, assignee, actor, reason):
    """Assign a ticket to a person."""
    _store(db).assign(ticket_id, assignee, actor, _now(), reason)
    console.print(f"ticket {ticket_id}: assigned to {assignee}")


@tickets.command("comment")
@_db_option
@click.argument("ticket_id", type=int)
@click.argument("text")
@click.option("--as", "actor", required=True)
@_ticket_action
def tickets_comment(db, ticket_id, text, actor):
    """Add a comment to a ticket's audit trail."""
    _store(db).comment(ticket_id, actor, text, _now())
    console.print(f"ticket {ticket_id}: comment added")


@tickets.command("case")
@_db_option
@click.argument("ticket_id", type=int)
@click.option("--summary", required=True, help="What the case teaches (典型案例摘要).")
@click.option("--as", "actor", required=True)
@_ticket_action
def tickets_case(db, ticket_id, summary, actor):
    """Mark a closed ticket as a typical case (典型案例)."""
    _store(db).mark_typical(ticket_id, actor, summary, _now())
    console.print(f"ticket {ticket_id}: marked as a typical case")


@tickets.command("escalate")
@_db_option
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
def tickets_escalate(db, rules):
    """Run the overdue check once: escalate what is due (the runners do it periodically)."""
    done = _store(db).escalate(_load_pack_or_exit(rules), _now())
    for d in done:
        console.print(f"ticket {d['ticket_id']} ({d['risk_id']}, {d['severity']}): escalated to level {d['level']}, {d['to']}")
    console.print(f"{len(done)} ticket(s) escalated")


@tickets.command("export")
@_db_option
@click.option("--kind", type=click.Choice(["violations", "cases", "tickets"]), required=True,
              help="violations: the violation record (违规行为记录); cases: typical cases (典型案例).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="A .csv or .xlsx file.")
def tickets_export(db, kind, out):
    """Export the violation record, typical cases or all tickets to CSV or XLSX."""
    from monitor.cases.exports import write_export

    n = write_export(out, kind, _store(db).export_rows(kind))
    console.print(f"wrote {n} row(s) to {out}")


@main.command("report")
@_db_option
@click.option("--month", required=True, help="YYYY-MM: tickets whose finding falls in this month.")
@click.option("--org", default=None, help="Only this org.")
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def report_cmd(db, month, org, rules, out_dir):
    """The monthly compliance report (XLSX and HTML): tickets by org, risk and severity,
    disposal rate and median time, SLA breaches, top risks, typical cases."""
    import re as _re

    from monitor.cases.monthly import monthly
    from monitor.cases.report import write_monthly_report

    if not _re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        err_console.print(f"--month {month}: use YYYY-MM, e.g. 2026-03")
        sys.exit(2)
    pack = _load_pack_or_exit(rules)
    store = _store(db)
    m = monthly(store.find(limit=10**9), month, _now(), org)
    titles = {r.id: r.title_zh for r in pack.risks.values()}
    xlsx, html = write_monthly_report(out_dir, m, titles, store.review_rates(month, org))
    s = m.summary
    console.print(f"{month}{' ' + org if org else ''}: {s['tickets']} tickets, {s['disposed']} disposed, "
                  f"{s['sla_breaches']} SLA breaches → {xlsx}, {html}")


@main.group()
def users() -> None:
    """Users of riskwatch serve: add them, give them API tokens."""


@users.command("add")
@_db_option
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "officer", "head", "admin"]), required=True)
@click.option("--department", "departments", multiple=True, help="An officer's department (repeatable), e.g. 财务资金部.")
@click.option("--name", "display_name")
@click.password_option(help="At least 10 characters (asked for when not given).")
def users_add(db, username, role, departments, display_name, password):
    """Add a user, or replace one."""
    from monitor.cases.auth import UserStore

    try:
        UserStore(_store(db).engine).add(username, password, role, list(departments), display_name)
    except ValueError as err:
        err_console.print(str(err))
        sys.exit(1)
    console.print(f"user {username}: {role}" + (f" of {', '.join(departments)}" if departments else ""))


@users.command("token")
@_db_option
@click.argument("username")
@click.option("--label", default="", help="What the token is for (revoke by it).")
@click.option("--days", default=90, show_default=True, help="How long it is valid (1 to 730).")
def users_token(db, username, label, days):
    """A new API token for a user (shown once; only its hash is kept)."""
    from monitor.cases.auth import UserStore

    try:
        console.print(UserStore(_store(db).engine).new_token(username, label, days))
    except ValueError as err:
        err_console.print(str(err))
        sys.exit(1)


@users.command("revoke")
@_db_option
@click.argument("username")
@click.option("--label", default=None, help="Only the tokens with this label (default: all of the user's).")
def users_revoke(db, username, label):
    """Revoke a user's API tokens at once."""
    from monitor.cases.auth import UserStore

    count = UserStore(_store(db).engine).revoke_tokens(username, label)
    console.print(f"revoked {count} token(s) of {username}" + (f" labelled {label}" if label is not None else ""))


@users.command("tokens")
@_db_option
@click.argument("username")
def users_tokens(db, username):
    """A user's tokens: label, made, expires, revoked (never the tokens themselves)."""
    from monitor.cases.auth import UserStore

    t = Table(title=f"tokens of {username}")
    for c in ("label", "created", "expires", "revoked"):
        t.add_column(c)
    for row in UserStore(_store(db).engine).tokens(username):
        t.add_row(row["label"], str(row["created_at"])[:16], str(row["expires_at"] or "")[:16], str(row["revoked_at"] or "")[:16])
    console.print(t)
