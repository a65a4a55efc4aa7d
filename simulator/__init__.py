"""A deterministic synthetic retail bank that emits Vigil's input events.

>>> from simulator import simulate, plan_customers
>>> events = list(simulate(customers=5, days=3, seed=7))
>>> [e["type"] for e in events[:2]]
['profile', 'profile']
>>> plan_customers(5, days=3, seed=7)[0].customer_id
'c000001'
"""

from simulator.bank import read_jsonl, simulate, write_jsonl
from simulator.plan import CustomerPlan, ground_truth, plan_customers, tier_of
from simulator.timeline import DEFAULT_START

__all__ = [
    "DEFAULT_START",
    "CustomerPlan",
    "ground_truth",
    "plan_customers",
    "read_jsonl",
    "simulate",
    "tier_of",
    "write_jsonl",
]
