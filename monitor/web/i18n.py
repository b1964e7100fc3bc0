"""The web UI's one message catalogue: Chinese by default, English with ``?lang=en``.

Every label, status, outcome, grade, button and error a page shows is a key
here (read in templates as ``t['key']`` or ``t.key`` for keys that are not
dict methods), and both languages have every key (``tests/test_web_i18n.py`` fails
otherwise). Values stored in the database (``open``, ``false_positive``,
``high``) are shown through ``label``:

    >>> label("zh", "status", "investigating"), label("en", "status", "investigating")
    ('核查中', 'Investigating')
    >>> label("zh", "grade", grade_of("critical")), grade_of("medium"), grade_of("low")
    ('红色', 'yellow', 'blue')
    >>> label("zh", "status", "no-such-status")   # unknown values are shown as they are
    'no-such-status'
"""

from __future__ import annotations

from monitor.cases.inbox import GRADE_SEVERITIES, grade_of

__all__ = ["GRADES", "LANGS", "MESSAGES", "VALUES", "grade_of", "in_lang", "label", "pick_lang"]

LANGS = ("zh", "en")

GRADES = tuple(GRADE_SEVERITIES)  # 预警等级, worst first


# Stored values, by kind, in each language.
VALUES: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        # 预警 → 核查 → 处置 → 销号
        "status": {"open": "待签收", "acknowledged": "已签收", "investigating": "核查中", "resolved": "已处置",
                   "closed": "已销号"},
        "move": {"acknowledged": "签收", "investigating": "开始核查", "resolved": "处置完毕", "closed": "销号",
                 "open": "重新打开"},
        "outcome": {"confirmed_violation": "确认违规", "false_positive": "误报", "remediated": "已整改"},
        "severity": {"critical": "特别重大", "high": "重大", "medium": "较大", "low": "一般"},
        "grade": {"red": "红色", "yellow": "黄色", "blue": "蓝色"},
        "domain": {"finance": "财务", "investment": "投资", "procurement": "采购", "governance": "治理"},
        "area": {"procurement": "采购", "finance": "财务", "investment": "投资", "contract": "合同",
                 "decision": "三重一大", "regulation": "规章制度", "overseas": "境外", "counterparty": "交易对象"},
        "source": {"rule": "规则", "detector": "异常检测", "control": "审查管控"},
        "role": {"viewer": "查看", "officer": "合规管理员", "head": "合规负责人", "admin": "管理员"},
        "rule_status": {"live": "生效", "shadow": "试运行", "draft": "草稿"},
        "admin_action": {"add_user": "新增用户", "change_user": "修改用户", "reset_password": "重置密码",
                         "new_token": "生成令牌", "revoke_tokens": "吊销令牌"},
        "rule_kind": {"event": "单事件", "window": "时间窗口", "total": "累计", "detector": "异常检测", "control": "审查管控"},
        "matter": {"contract": "经济合同", "regulation": "规章制度", "decision": "重要决策", "project": "重大项目",
                   "legal_case": "涉外法律纠纷", "key_post": "重点岗位人员"},
        "action": {"open": "生成工单", "move": "状态变更", "assign": "指派", "comment": "备注",
                   "escalate": "升级督办", "typical_case": "列为典型案例"},
    },
    "en": {
        "status": {"open": "Open", "acknowledged": "Acknowledged", "investigating": "Investigating",
                   "resolved": "Resolved", "closed": "Closed"},
        "move": {"acknowledged": "Acknowledge", "investigating": "Investigate", "resolved": "Resolve",
                 "closed": "Close", "open": "Reopen"},
        "outcome": {"confirmed_violation": "Confirmed violation", "false_positive": "False positive",
                    "remediated": "Remediated"},
        "severity": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
        "grade": {"red": "Red", "yellow": "Yellow", "blue": "Blue"},
        "domain": {"finance": "Finance", "investment": "Investment", "procurement": "Procurement",
                   "governance": "Governance"},
        "area": {"procurement": "Procurement", "finance": "Finance", "investment": "Investment",
                 "contract": "Contracts", "decision": "Major decisions", "regulation": "Regulations",
                 "overseas": "Overseas", "counterparty": "Counterparties"},
        "source": {"rule": "Rule", "detector": "Detector", "control": "Review control"},
        "role": {"viewer": "Viewer", "officer": "Compliance officer", "head": "Compliance head", "admin": "Administrator"},
        "rule_status": {"live": "Live", "shadow": "Shadow", "draft": "Draft"},
        "admin_action": {"add_user": "User added", "change_user": "User changed", "reset_password": "Password reset",
                         "new_token": "Token made", "revoke_tokens": "Tokens revoked"},
        "rule_kind": {"event": "Single event", "window": "Window", "total": "Running total", "detector": "Detector",
                      "control": "Review control"},
        "matter": {"contract": "Contracts", "regulation": "Regulations", "decision": "Major decisions",
                   "project": "Major projects", "legal_case": "Legal disputes abroad", "key_post": "Staff on key posts"},
        "action": {"open": "Opened", "move": "Moved", "assign": "Assigned", "comment": "Comment",
                   "escalate": "Escalated", "typical_case": "Marked a typical case"},
    },
}

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "inbox": "工单", "my_inbox": "我的待办", "overdue": "逾期工单", "ticket": "工单", "login": "登录",
        "logout": "退出", "user": "用户名", "password": "密码", "status": "状态", "risk": "风险", "severity": "等级",
        "grade": "预警等级", "org": "单位", "due": "处置时限", "owner": "责任岗位", "evidence": "证据",
        "audit": "处置记录", "actions": "处置", "reason": "理由", "outcome": "结论", "comment": "备注",
        "assign": "指派", "assignee": "经办人", "submit": "提交", "legal": "法律依据", "exports": "导出",
        "bad_login": "用户名或密码错误", "too_many": "尝试次数过多，请稍后再试", "none": "没有工单",
        "timeline": "事项时间线", "key_post": "重点岗位", "stages": "项目阶段", "stage": "阶段", "reached_at": "进入时间",
        "moved_on_at": "推进到下一阶段", "participation": "法律合规参与", "required": "必经审查", "at_issue": "问题环节", "who": "经办", "opinion": "意见",
        "area": "领域", "rule": "规则", "source": "来源", "opened": "生成时间", "from": "起", "to": "止",
        "search": "搜索", "search_hint": "标题、交易对象或编号", "filter": "筛选", "clear_filters": "清除", "active": "未办结",
        "any": "全部", "only_overdue": "仅逾期", "sort": "排序", "newest": "最新生成", "oldest": "最早生成",
        "due_first": "时限最近", "severity_first": "等级最高", "page": "第 {page} / {pages} 页，共 {total} 条",
        "prev": "上一页", "next": "下一页", "export_csv": "导出 CSV", "export_xlsx": "导出 Excel",
        "selected": "所选工单", "bulk_ack": "批量签收", "bulk_assign": "批量指派", "select_all": "全选",
        "bulk_done": "已处理 {done} 条，{skipped} 条未处理：{why}", "counterparty": "交易对象",
        "event": "事件", "type": "类型", "occurred_at": "发生时间", "amount": "金额", "attributes": "属性",
        "post": "岗位", "no": "文号", "title": "标题", "escalated": "已升级", "lang_switch": "English",
        "duties": "岗位职责", "sla": "时限", "ack_within": "签收", "dispose_within": "处置",
        "related": "相关工单", "same_counterparty": "同一交易对象", "same_org_risk": "同一单位同一风险",
        "no_related": "没有相关工单", "stale_form": "表单已过期或来源不明，请刷新页面",
        "no_ticket": "没有该工单", "not_found": "没有该工单或页面", "not_allowed": "您的角色可以查看但不能处置该工单", "nothing_selected": "未选择工单",
        "conflict": "无法执行该操作",
        "cockpit": "驾驶舱", "period": "期间", "show": "查看", "open_total": "未办结工单", "overdue_total": "逾期未办结",
        "sla_share": "按期处置率", "review_rate": "审查率", "heat_title": "风险分布（按单位，未办结，按等级加权）",
        "trend_title": "每周新增与办结", "new_tickets": "新增", "closed_tickets": "办结", "by_post": "各岗位未办结与逾期",
        "top_risks": "主要风险", "top_rules": "触发最多的规则", "week": "周", "total": "合计", "others": "其他单位",
        "no_data": "暂无数据", "resolved_in_period": "期间处置 {n} 件，按期 {k} 件", "executed": "已执行事项",
        "reviewed": "先审后办", "matter_kind": "事项类别", "weight": "加权分值", "group": "全集团",
        "lists": "三项清单", "risk_list": "合规风险清单", "duty_list": "岗位合规职责清单", "control_list": "合规审查流程管控清单",
        "rules": "规则", "cases": "典型案例", "violations": "违规行为记录", "live_rules": "生效规则与检测",
        "coverage": "覆盖", "covered": "已覆盖", "not_covered": "未覆盖", "tickets_all": "工单总数",
        "department": "部门", "contact": "联系方式", "escalates_to": "升级至", "steps": "必经环节", "within": "时限",
        "days": "{n} 天", "kind": "类型", "file": "文件", "versions": "规则包版本", "version": "版本",
        "first_loaded": "首次加载", "last_loaded": "最近加载", "loads": "加载次数", "hits_chart": "近 26 周每周新增工单",
        "source_yaml": "规则原文（含测试用例）", "summary": "案例摘要", "resolved_at": "处置时间", "closed_at": "办结时间",
        "no_rules_dir": "未指定规则目录，无法显示原文", "tests_beside": "测试用例写在规则旁边，由 riskwatch rules test 运行",
        "open_in_inbox": "在工单中查看",
        "admin": "系统管理", "users": "用户", "add_user": "新增用户", "display_name": "姓名", "role": "角色",
        "departments": "所属部门", "save": "保存", "reset_password": "重置密码", "new_password": "新密码（至少 10 位）",
        "tokens": "API 令牌", "make_token": "生成令牌", "revoke": "吊销", "label": "标签", "token_days": "有效天数",
        "token_once": "请立即复制保存：此令牌只显示这一次", "admin_audit": "管理操作记录", "user_exists": "用户已存在",
        "invalid": "输入有误", "own_role": "不能取消自己的管理员角色", "done": "已完成：{what}", "created_at": "创建时间",
        "actor": "操作人", "target": "对象", "detail": "详情", "live_tokens": "有效令牌",
    },
    "en": {
        "inbox": "Tickets", "my_inbox": "My inbox", "overdue": "Overdue", "ticket": "Ticket", "login": "Log in",
        "logout": "Log out", "user": "Username", "password": "Password", "status": "Status", "risk": "Risk",
        "severity": "Severity", "grade": "Grade", "org": "Org", "due": "Due", "owner": "Owner", "evidence": "Evidence",
        "audit": "Audit trail", "actions": "Actions", "reason": "Reason", "outcome": "Outcome", "comment": "Comment",
        "assign": "Assign", "assignee": "Assignee", "submit": "Submit", "legal": "Legal basis", "exports": "Exports",
        "bad_login": "Wrong username or password", "too_many": "Too many attempts; try again later",
        "none": "No tickets", "timeline": "Matter timeline", "key_post": "Key post", "stages": "Project stages",
        "stage": "Stage", "reached_at": "Reached", "moved_on_at": "Moved on", "participation": "Legal participation",
        "required": "Required steps", "at_issue": "At issue",
        "who": "Who", "opinion": "Opinion", "area": "Area", "rule": "Rule", "source": "Source", "opened": "Opened",
        "from": "From", "to": "To", "search": "Search", "search_hint": "title, counterparty or id", "filter": "Filter",
        "clear_filters": "Clear", "active": "Active", "any": "Any", "only_overdue": "Overdue only", "sort": "Sort", "newest": "Newest",
        "oldest": "Oldest", "due_first": "Due first", "severity_first": "Most severe",
        "page": "Page {page} of {pages}, {total} tickets", "prev": "Previous", "next": "Next",
        "export_csv": "Export CSV", "export_xlsx": "Export Excel", "selected": "Selected tickets",
        "bulk_ack": "Acknowledge", "bulk_assign": "Assign", "select_all": "Select all",
        "bulk_done": "{done} done, {skipped} not: {why}", "counterparty": "Counterparty", "event": "Event",
        "type": "Type", "occurred_at": "Occurred", "amount": "Amount", "attributes": "Attributes", "post": "Post",
        "no": "No.", "title": "Title", "escalated": "Escalated", "lang_switch": "中文", "duties": "Duties",
        "sla": "SLA", "ack_within": "acknowledge", "dispose_within": "dispose", "related": "Related tickets",
        "same_counterparty": "Same counterparty", "same_org_risk": "Same org and risk",
        "no_related": "No related tickets", "stale_form": "The form is stale or forged (CSRF); reload the page",
        "no_ticket": "No such ticket", "not_found": "No such ticket or page", "not_allowed": "Your role may read this ticket but not change it",
        "nothing_selected": "No tickets selected", "conflict": "That cannot be done",
        "cockpit": "Cockpit", "period": "Period", "show": "Show", "open_total": "Open tickets",
        "overdue_total": "Overdue", "sla_share": "Disposed within SLA", "review_rate": "Review rate",
        "heat_title": "Risks by company (open, weighted by severity)", "trend_title": "New and closed each week",
        "new_tickets": "New", "closed_tickets": "Closed", "by_post": "Open and overdue by owner post",
        "top_risks": "Top risks", "top_rules": "Rules firing most", "week": "Week", "total": "Total",
        "others": "Other companies", "no_data": "No data yet", "resolved_in_period": "{n} resolved in the period, {k} in time",
        "executed": "Matters executed", "reviewed": "Reviewed first", "matter_kind": "Matter kind",
        "weight": "Weighted score", "group": "Whole group",
        "lists": "The three lists", "risk_list": "Compliance risk list", "duty_list": "Post compliance duties",
        "control_list": "Review process controls", "rules": "Rules", "cases": "Typical cases",
        "violations": "Violation record", "live_rules": "Live rules and detectors", "coverage": "Coverage",
        "covered": "Covered", "not_covered": "Not covered", "tickets_all": "Tickets", "department": "Department",
        "contact": "Contact", "escalates_to": "Escalates to", "steps": "Required steps", "within": "Within",
        "days": "{n} days", "kind": "Kind", "file": "File", "versions": "Rule pack versions", "version": "Version",
        "first_loaded": "First loaded", "last_loaded": "Last loaded", "loads": "Loads",
        "hits_chart": "Tickets opened each week, last 26 weeks", "source_yaml": "As written (with its tests)",
        "summary": "Case summary", "resolved_at": "Resolved", "closed_at": "Closed",
        "no_rules_dir": "No rules folder given: the text cannot be shown",
        "tests_beside": "The tests are written beside the rule and run by riskwatch rules test",
        "open_in_inbox": "Open in the inbox",
        "admin": "Administration", "users": "Users", "add_user": "Add a user", "display_name": "Name", "role": "Role",
        "departments": "Departments", "save": "Save", "reset_password": "Reset password",
        "new_password": "New password (10 characters or more)", "tokens": "API tokens", "make_token": "Make a token",
        "revoke": "Revoke", "label": "Label", "token_days": "Days valid",
        "token_once": "Copy it now: this token is shown this once only", "admin_audit": "Administration audit trail",
        "user_exists": "The user exists already", "invalid": "Not accepted", "own_role": "You cannot take away your own admin role",
        "done": "Done: {what}", "created_at": "Created", "actor": "By", "target": "User", "detail": "Detail",
        "live_tokens": "Live tokens",
    },
}


def pick_lang(*wanted: str | None) -> str:
    """The first of ``wanted`` that is a language the UI speaks, else Chinese."""
    return next((w for w in wanted if w in LANGS), "zh")


def in_lang(lang: str, text: str | None) -> str:
    """One language's half of a "中文 / English" text (rule titles are written so); other texts as they are.

    >>> in_lang("zh", "无合同付款 / Payment without a contract"), in_lang("en", "无合同付款 / Payment without a contract")
    ('无合同付款', 'Payment without a contract')
    >>> in_lang("en", "临江恒达")
    '临江恒达'
    """
    if not text:
        return ""
    zh, sep, en = text.partition(" / ")
    if not sep:
        return text
    return zh if lang == "zh" else en


def label(lang: str, kind: str, value: str | None) -> str:
    """A stored value as the page shows it; an unknown one as it is."""
    if value is None:
        return ""
    return VALUES[pick_lang(lang)].get(kind, {}).get(value, value)
