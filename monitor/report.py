"""The backtest and diff reports as one self-contained HTML file (charts inline).

Charts are drawn with matplotlib (Agg, no display) and embedded as SVG; the
page is a Jinja2 template with autoescaping, so rule messages and event ids
from the data can never become markup.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from monitor.backtest import BacktestResult

__all__ = ["write_backtest_report"]

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>riskwatch backtest — {{ title }}</title>
<style>
 body { font: 14px/1.5 system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
 table { border-collapse: collapse; width: 100%; margin: 1em 0; }
 th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }
 th:first-child, td:first-child, td.text { text-align: left; }
 .muted { color: #777; } .chart svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>Backtest: {{ title }}</h1>
<p class="muted">rules {{ rules_dir }} (pack {{ version }}) over {{ events_file }}: {{ "{:,}".format(lines) }} records,
 {{ "{:,}".format(scored) }} scored, {{ "{:,}".format(rejected) }} rejected; {{ "{:,}".format(overall.alerts) }} alerts
 over {{ "%.0f"|format(overall.days) }} days.</p>
{% if labelled %}
<h2>Overall</h2>
<table><tr><th>labelled events</th><th>precision</th><th>recall</th><th>F1</th></tr>
<tr><td>{{ "{:,}".format(overall.labelled_events) }}</td><td>{{ pct(overall.precision) }}</td><td>{{ pct(overall.recall) }}</td>
<td>{{ pct(overall.f1) }}</td></tr></table>
{% endif %}
<h2>Per rule</h2>
<table><tr><th>rule</th><th>status</th><th>alerts</th><th>events flagged</th><th>per day</th><th>max in a day</th><th>per week</th>
{% if labelled %}<th>true alerts</th><th>precision</th><th>recall</th><th>F1</th>{% endif %}</tr>
{% for r in rows %}<tr><td>{{ r.rule_id }}</td><td class="text">{{ r.status }}</td><td>{{ r.alerts }}</td><td>{{ r.hits }}</td>
<td>{{ "%.2f"|format(r.alerts_per_day) }}</td><td>{{ r.max_alerts_in_a_day }}</td><td>{{ "%.1f"|format(r.alerts_per_week) }}</td>
{% if labelled %}<td>{{ r.true_alerts }}</td><td>{{ pct(r.precision) }}</td><td>{{ pct(r.recall) }}</td><td>{{ pct(r.f1) }}</td>{% endif %}</tr>
{% endfor %}</table>
<h2>Alerts per week</h2><div class="chart">{{ weekly_chart|safe }}</div>
{% if labelled %}<h2>Precision and recall</h2><div class="chart">{{ quality_chart|safe }}</div>{% endif %}
{% if false_alarms %}<h2>False alarms (examples)</h2>
{% for rule, messages in false_alarms.items() %}<h3>{{ rule }}</h3><ul>{% for m in messages %}<li>{{ m }}</li>{% endfor %}</ul>{% endfor %}{% endif %}
{% if misses %}<h2>Misses (examples)</h2>
{% for rule, items in misses.items() %}<h3>{{ "labelled events no alert holds" if rule == "*" else rule }}</h3>
<ul>{% for m in items %}<li>{{ m }}</li>{% endfor %}</ul>{% endfor %}{% endif %}
</body></html>
"""


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()[buffer.getvalue().find("<svg"):]


def _charts(result: BacktestResult) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weekly = ""
    if not result.per_week.empty:
        fig, ax = plt.subplots(figsize=(11, 4))
        result.per_week.plot(kind="bar", stacked=True, ax=ax, width=0.8, legend=True)
        ax.set_xticks(range(len(result.per_week)), [d.strftime("%Y-%m-%d") for d in result.per_week.index],
                      rotation=45, ha="right")
        ax.set_ylabel("alerts opened")
        ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
        weekly = _svg(fig)
        plt.close(fig)
    quality = ""
    if result.labelled:
        frame = result.per_rule.set_index("rule_id")[["precision", "recall"]].dropna(how="all")
        if not frame.empty:
            fig, ax = plt.subplots(figsize=(11, 0.3 * len(frame) + 1))
            frame.plot(kind="barh", ax=ax, xlim=(0, 1))
            ax.invert_yaxis()
            quality = _svg(fig)
            plt.close(fig)
    return weekly, quality


def write_backtest_report(path: Path, result: BacktestResult, statuses: dict[str, str], info: dict) -> None:
    import jinja2

    env = jinja2.Environment(autoescape=True)
    weekly, quality = _charts(result)

    def pct(v) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"

    rows = result.per_rule.assign(status=result.per_rule["rule_id"].map(statuses).fillna(""))
    html = env.from_string(_PAGE).render(
        rows=rows.to_dict("records"), overall=result.overall, labelled=result.labelled, pct=pct,
        weekly_chart=weekly, quality_chart=quality, false_alarms={k: v for k, v in result.false_alarms.items() if v},
        misses=result.misses, **info)
    path.write_text(html, encoding="utf-8")


