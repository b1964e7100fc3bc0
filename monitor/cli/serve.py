"""``riskwatch serve``: the REST API and web UI."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from monitor.cli.app import _db_option, _load_pack_or_exit, _notifier, _now, _serve_metrics, _store, console, main

# --- serve and users ------------------------------------------------------------------------
@main.command()
@_db_option
@click.option("--rules", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--metrics-port", default=9466, show_default=True, help="Port for /metrics (-1: off).")
@click.option("--notify", "notify_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Notification channels and routes (YAML): escalations found by the periodic check.")
@click.option("--secure-cookies/--no-secure-cookies", default=None,
              help="Mark the session cookie Secure and send HSTS: for use behind TLS (default: $RISKWATCH_SECURE_COOKIES).")
@click.option("--forwarded-allow-ips", default=None,
              help="Reverse proxies (comma-separated IPs) whose X-Forwarded-For is believed; none by default, "
                   "so the client address (and its login limit) is the socket's.")
def serve(db, rules, host, port, metrics_port, notify_path, secure_cookies, forwarded_allow_ips):
    """The REST API (/api, OpenAPI at /api/openapi.json) and the web UI for compliance managers.

    Session cookies are signed with $RISKWATCH_SESSION_SECRET (set it, or sessions end with the process)."""
    import threading

    import uvicorn

    from monitor.web.serve import create_app

    pack = _load_pack_or_exit(rules)
    store = _store(db)
    metrics, mport = _serve_metrics(metrics_port)
    if mport:
        console.print(f"metrics: http://127.0.0.1:{mport}/metrics")
    notifier = _notifier(notify_path, metrics)

    def periodic_check() -> None:
        from monitor.cases.notify import announce

        while True:
            try:
                announce(metrics, notifier, escalated=store.escalate(pack, _now()))
                if metrics is not None:
                    metrics.set_ticket_gauges(store.open_by_risk(), store.overdue_by_risk(_now()))
            except Exception as err:  # noqa: BLE001 - the check must outlive a database hiccup
                logging.getLogger("riskwatch.serve").error("periodic check failed: %s", err)
            time.sleep(60)

    threading.Thread(target=periodic_check, name="riskwatch-escalation", daemon=True).start()
    if secure_cookies is None:
        secure_cookies = os.environ.get("RISKWATCH_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
    from monitor.packs.rulefiles import default_rules_dir, load_orgs

    rules_dir = rules or default_rules_dir()
    orgs, _ = load_orgs(rules_dir)  # its problems stopped the pack's load already
    app = create_app(store, pack, os.environ.get("RISKWATCH_SESSION_SECRET"), metrics=metrics,
                     secure_cookies=secure_cookies, orgs=orgs, rules_dir=rules_dir)
    console.print(f"riskwatch serve: http://{host}:{port}/  (API description: /api/openapi.json, with a token)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=bool(forwarded_allow_ips),
                forwarded_allow_ips=forwarded_allow_ips or "")
