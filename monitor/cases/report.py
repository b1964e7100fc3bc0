"""Reports: the backtest as one self-contained HTML file (charts inline), and the
monthly compliance report as XLSX and HTML.

Charts are drawn with matplotlib (Agg, no display) and embedded as SVG; the
page is a Jinja2 template with autoescaping, so rule messages and event ids
from the data can never become markup.
"""

from __future__ import annotations

import io
import math
from pathlib import Path


from monitor.analyst.backtest import BacktestResult
from monitor.core.controls import REVIEW_KINDS

__all__ = ["write_backtest_report", "write_monthly_report"]

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




_MONTHLY = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>合规风险监测月报 {{ m.month }}</title>
<style>
 body { font: 14px/1.5 system-ui, "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em auto; max-width: 1000px; }
 table { border-collapse: collapse; margin: 1em 0; } th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
 th:first-child, td:first-child { text-align: left; } .chart svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>合规风险监测月报 / Compliance monitoring report — {{ m.month }}{% if m.org %} · {{ m.org }}{% endif %}</h1>
<table>
<tr><td>预警工单 / Tickets</td><td>{{ s.tickets }}</td></tr>
<tr><td>已处置 / Disposed</td><td>{{ s.disposed }} ({{ pct(s.disposal_rate) }})</td></tr>
<tr><td>处置用时中位数 / Median days to dispose</td><td>{{ num(s.median_days_to_dispose) }}</td></tr>
<tr><td>超时 / SLA breaches</td><td>{{ s.sla_breaches }}</td></tr>
<tr><td>确认违规 / Confirmed violations</td><td>{{ s.confirmed_violations }}</td></tr>
<tr><td>误报 / False positives</td><td>{{ s.false_positives }}</td></tr>
</table>
<h2>按风险 / By risk</h2><div class="chart">{{ risk_chart|safe }}</div>
<table><tr><th>风险 / Risk</th><th>工单</th><th>已处置</th><th>超时</th></tr>
{% for r in by_risk %}<tr><td>{{ r.risk_id }} {{ titles.get(r.risk_id, '') }}</td><td>{{ r.tickets }}</td><td>{{ r.disposed }}</td><td>{{ r.breaches }}</td></tr>{% endfor %}
</table>
<h2>按单位与等级 / By org and severity</h2>
<table><tr><th>单位 / Org</th>{% for c in org_cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for org, row in by_org %}<tr><td>{{ org }}</td>{% for c in org_cols %}<td>{{ row[c] }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>审查率 / Review rate</h2>
<p>已执行事项中，每一项必经审查均在执行前通过的比例（合同、规章制度、“三重一大”决策）。/ The share of executed matters whose every required review step passed before execution.</p>
{% if reviews %}<table><tr><th>单位 / Org</th><th>事项 / Matter kind</th><th>审查到位 / Reviewed</th><th>已执行 / Executed</th><th>审查率 / Rate</th></tr>
{% for r in reviews %}<tr><td>{{ r.org_id }}</td><td>{{ r.matter_kind }}</td><td>{{ r.reviewed }}</td><td>{{ r.executed }}</td><td>{{ pct(r.rate) }}</td></tr>{% endfor %}
</table>{% else %}<p>—</p>{% endif %}
<h2>全程参与率 / Legal participation in major projects</h2>
<p>本月推进到下一阶段的重大项目中，已离开的每一阶段均有法律合规人员在推进前参与的比例。/ Of the watched major projects that moved on this month, the share whose every stage left was covered by legal and compliance staff before the project moved on.</p>
{% if projects %}<table><tr><th>单位 / Org</th><th>全程参与 / Covered</th><th>推进项目 / Moved on</th><th>全程参与率 / Rate</th></tr>
{% for r in projects %}<tr><td>{{ r.org_id }}</td><td>{{ r.reviewed }}</td><td>{{ r.executed }}</td><td>{{ pct(r.rate) }}</td></tr>{% endfor %}
</table>{% else %}<p>—</p>{% endif %}
<h2>重点岗位人员合规培训 / Key-post staff trained and committed</h2>
<p>本月在重点岗位上履职（审查通过、审批大额付款、签订合同）的人员中，履职前365天内完成合规培训、已签署本年度《合规承诺书》的比例。/ Of the staff who acted on a key post this month, the share with a compliance training in the 365 days before and the share who signed this year's commitment.</p>
{% if trainings %}<table><tr><th>单位 / Org</th><th>履职人员 / Staff who acted</th><th>已培训 / Trained</th><th>培训率 / Share</th><th>已承诺 / Signed</th><th>承诺率 / Share</th></tr>
{% for r in trainings %}<tr><td>{{ r.org_id }}</td><td>{{ r.staff }}</td><td>{{ r.trained }}</td><td>{{ pct(r.trained_share) }}</td><td>{{ r.signed }}</td><td>{{ pct(r.signed_share) }}</td></tr>{% endfor %}
</table>{% else %}<p>—</p>{% endif %}
<h2>典型案例 / Typical cases</h2>
{% if cases %}<ul>{% for c in cases %}<li>#{{ c.id }} {{ c.title }}（{{ c.org_id }}）：{{ c.case_summary }}</li>{% endfor %}</ul>{% else %}<p>—</p>{% endif %}
</body></html>
"""


def _training_rows(rows: list[dict]) -> list[dict]:
    """Per org: key-post staff who acted, of them trained and signed (the ``training`` and
    ``commitment`` rows of ``SqlTicketStore.review_rates``)."""
    by_org: dict[str, dict] = {}
    for r in rows:
        if r["matter_kind"] in ("training", "commitment"):
            row = by_org.setdefault(r["org_id"], {"org_id": r["org_id"], "staff": 0, "trained": 0, "signed": 0})
            row["staff"] = max(row["staff"], r["executed"])
            row["trained" if r["matter_kind"] == "training" else "signed"] = r["reviewed"]
    return [{**row, "trained_share": row["trained"] / row["staff"], "signed_share": row["signed"] / row["staff"]}
            for _, row in sorted(by_org.items()) if row["staff"]]


def write_monthly_report(directory: Path, m, risk_titles: dict[str, str],
                         reviews: list[dict] | None = None) -> tuple[Path, Path]:
    """``riskwatch-YYYY-MM.xlsx`` and ``.html`` in ``directory``; ``reviews`` are the
    month's review rates (``SqlTicketStore.review_rates``)."""
    projects = [r for r in reviews or [] if r["matter_kind"] == "project"]  # 全程参与率
    trainings = _training_rows(reviews or [])  # key-post staff trained and committed
    reviews = [r for r in reviews or [] if r["matter_kind"] in REVIEW_KINDS]
    import jinja2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    from monitor.cases.exports import xlsx_row

    directory.mkdir(parents=True, exist_ok=True)
    stem = f"riskwatch-{m.month}" + (f"-{m.org}" if m.org else "")
    s = m.summary

    book = Workbook()
    sheet = book.active
    sheet.title = "概况 Summary"
    for key, label in (("tickets", "预警工单 / Tickets"), ("disposed", "已处置 / Disposed"),
                       ("disposal_rate", "处置率 / Disposal rate"), ("median_days_to_dispose", "处置用时中位数（天）/ Median days"),
                       ("sla_breaches", "超时 / SLA breaches"), ("confirmed_violations", "确认违规 / Confirmed violations"),
                       ("false_positives", "误报 / False positives")):
        value = s[key]
        sheet.append(xlsx_row(sheet, [label, None if value != value else value]))
    risks = book.create_sheet("按风险 By risk")
    risks.append(xlsx_row(risks, ["风险 / Risk", "名称 / Title", "工单 / Tickets", "已处置 / Disposed", "超时 / Breaches"]))
    for risk_id, row in m.by_risk.iterrows():
        risks.append(xlsx_row(risks, [risk_id, risk_titles.get(risk_id, ""), int(row["tickets"]), int(row["disposed"]), int(row["breaches"])]))
    if len(m.by_risk):
        chart = BarChart()
        chart.title = "工单数 / Tickets by risk"
        chart.add_data(Reference(risks, min_col=3, min_row=1, max_row=len(m.by_risk) + 1), titles_from_data=True)
        chart.set_categories(Reference(risks, min_col=1, min_row=2, max_row=len(m.by_risk) + 1))
        risks.add_chart(chart, "G2")
    orgs = book.create_sheet("按单位 By org")
    cols = list(m.by_org.columns)
    orgs.append(xlsx_row(orgs, ["单位 / Org", *cols]))
    for org, row in m.by_org.iterrows():
        orgs.append(xlsx_row(orgs, [org, *[int(row[c]) for c in cols]]))
    rates = book.create_sheet("审查率 Review rate")
    rates.append(xlsx_row(rates, ["单位 / Org", "事项 / Matter kind", "审查到位 / Reviewed", "已执行 / Executed",
                                  "审查率 / Rate"]))
    for r in reviews:
        rates.append(xlsx_row(rates, [r["org_id"], r["matter_kind"], r["reviewed"], r["executed"], round(r["rate"], 4)]))
    staff = book.create_sheet("重点岗位培训 Key posts")
    staff.append(xlsx_row(staff, ["单位 / Org", "履职人员 / Staff who acted", "已培训 / Trained", "培训率 / Share",
                                  "已承诺 / Signed", "承诺率 / Share"]))
    for r in trainings:
        staff.append(xlsx_row(staff, [r["org_id"], r["staff"], r["trained"], round(r["trained_share"], 4), r["signed"],
                                      round(r["signed_share"], 4)]))
    participation = book.create_sheet("全程参与率 Projects")
    participation.append(xlsx_row(participation, ["单位 / Org", "全程参与 / Covered", "推进项目 / Moved on",
                                                  "全程参与率 / Rate"]))
    for r in projects:
        participation.append(xlsx_row(participation, [r["org_id"], r["reviewed"], r["executed"], round(r["rate"], 4)]))
    cases = book.create_sheet("典型案例 Cases")
    cases.append(xlsx_row(cases, ["工单 / Ticket", "预警 / Alert", "单位 / Org", "摘要 / Summary"]))
    for _, c in m.cases.iterrows():
        cases.append(xlsx_row(cases, [int(c["id"]), c["title"], c["org_id"], c["case_summary"]]))
    xlsx = directory / f"{stem}.xlsx"
    book.save(xlsx)

    risk_chart = ""
    if len(m.by_risk):
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(m.by_risk) + 1))
        m.by_risk[["tickets", "breaches"]].plot(kind="barh", ax=ax)
        ax.invert_yaxis()
        risk_chart = _svg(fig)
        plt.close(fig)
    env = jinja2.Environment(autoescape=True)
    html = env.from_string(_MONTHLY).render(
        m=m, s=s, risk_chart=risk_chart, titles=risk_titles, org_cols=cols,
        by_risk=[{"risk_id": k, **{c: int(v) for c, v in r.items()}} for k, r in m.by_risk.iterrows()],
        by_org=[(k, {c: int(v) for c, v in r.items()}) for k, r in m.by_org.iterrows()],
        cases=m.cases.to_dict("records"), reviews=reviews, projects=projects, trainings=trainings,
        pct=lambda v: "—" if v != v else f"{100 * v:.1f}%", num=lambda v: "—" if v != v else f"{v:.1f}")
    page = directory / f"{stem}.html"
    page.write_text(html, encoding="utf-8")
    return xlsx, page
