"""The fictional group the generator writes about: its orgs, and the words its
suppliers' and people's names are made of."""

from __future__ import annotations

import datetime as dt

__all__ = ["BRANDS", "CEST", "CITIES", "CST", "DEPARTMENT_LIMIT", "GIVEN_NAMES", "ORGS", "SUFFIXES", "SURNAMES", "TENDER",
           "TRADES"]

CST = dt.timezone(dt.timedelta(hours=8))
CEST = dt.timezone(dt.timedelta(hours=2))
# org_id, name, weight, utc offset
ORGS = [
    ("SUB01", "江城建设工程有限公司", 14, CST),
    ("SUB02", "江城能源发展有限公司", 12, CST),
    ("SUB03", "江城交通投资有限公司", 11, CST),
    ("SUB04", "江城水务集团有限公司", 10, CST),
    ("SUB05", "江城城市更新有限公司", 9, CST),
    ("SUB06", "江城商贸物流有限公司", 9, CST),
    ("SUB07", "江城新材料科技有限公司", 8, CST),
    ("SUB08", "江城文旅发展有限公司", 7, CST),
    ("SUB09", "江城数字科技有限公司", 7, CST),
    ("SUB10", "江城环保产业有限公司", 6, CST),
    ("SUB11", "江城金融服务有限公司", 4, CST),
    ("SUB12", "Jiangcheng Europe GmbH（江城欧洲）", 3, CEST),
]
CITIES = ["临江", "南岭", "东湖", "西山", "北塘", "青州", "云溪", "金沙", "平阳", "安宁", "长丰", "兴华", "庆元",
           "宁远", "永川", "江宁", "松阳", "白沙", "泰和", "高平"]
BRANDS = ["恒达", "宏图", "瑞丰", "永盛", "华信", "中联", "天成", "鼎泰", "博远", "嘉禾", "新元", "利通", "安泰",
           "盛世", "汇通", "隆基", "万和", "金源", "正大", "协力", "德润", "凯旋", "广源", "同创", "弘毅", "宇航",
           "远景", "启明", "华茂", "晨光"]
TRADES = ["建材", "机电设备", "工程咨询", "劳务", "信息技术", "环保科技", "物流", "电气", "装饰工程", "管道",
           "检测技术", "办公用品", "安防科技", "园林绿化", "市政工程", "商贸"]
SUFFIXES = ["有限公司", "有限责任公司", "股份有限公司"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = ["伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "建国", "志强"]
# The group's own limits, which the default rules know: a department's payment
# authority (500,000 unless listed) and the amount from which a category must go
# to tender.
DEPARTMENT_LIMIT = {"SUB07": 300_000.0}
TENDER = {"goods": 2_000_000.0, "services": 1_000_000.0, "construction": 4_000_000.0}
