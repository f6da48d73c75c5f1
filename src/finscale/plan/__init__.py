"""`finscale plan`: what a design can detect and what it costs, before anything trains.

Per horizon, the smallest slope per decade of parameters the report's scaling test would find
with 80 % power on validation and on test (`power`), from the windows of the dataset the spec
names and a stated noise model; per study, FLOPs and device-hours from the architectures of its
grid (`compute`). Imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finscale.lazy import lazy_exports

# Each public name and the module that defines it: the one list (`__all__` follows from it).
_WHERE = {
    "Design": "power",
    "Plan": "design",
    "PlanOptions": "design",
    "WindowNoise": "power",
    "detectable": "power",
    "measure_cpu_gflops": "compute",
    "plan_json": "text",
    "plan_lines": "text",
    "plan_studies": "design",
    "read_pilots": "pilot",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # the same names for type checkers
    from finscale.plan.compute import measure_cpu_gflops as measure_cpu_gflops
    from finscale.plan.design import Plan as Plan
    from finscale.plan.design import PlanOptions as PlanOptions
    from finscale.plan.design import plan_studies as plan_studies
    from finscale.plan.pilot import read_pilots as read_pilots
    from finscale.plan.power import Design as Design
    from finscale.plan.power import WindowNoise as WindowNoise
    from finscale.plan.power import detectable as detectable
    from finscale.plan.text import plan_json as plan_json
    from finscale.plan.text import plan_lines as plan_lines


__getattr__ = lazy_exports("finscale.plan", _WHERE)
