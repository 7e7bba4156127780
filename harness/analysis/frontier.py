"""The throughput frontier: checkout rate against dashboard query rate.

Each measured point (an architecture at one load level) is (dashboard rate, checkout rate); more
of both is better. The frontier is the set of points no other point beats on both; the best
system is the one whose point lies nearest the corner of the best rates seen (both axes scaled
to their best value, so neither unit dominates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

X, Y = "dashboard_rate_per_s", "checkout_rate_per_s"


def pareto(points: pd.DataFrame, x: str = X, y: str = Y) -> pd.DataFrame:
    """The points not dominated by another (≥ on both axes and > on one), sorted by `x`."""
    values = points[[x, y]].to_numpy(dtype=float)
    keep = []
    for px, py in values:
        dominated = (
            (values[:, 0] >= px)
            & (values[:, 1] >= py)
            & ((values[:, 0] > px) | (values[:, 1] > py))
        )
        keep.append(not dominated.any())
    return points[np.array(keep, dtype=bool)].sort_values(x)


def corner_distance(points: pd.DataFrame, x: str = X, y: str = Y) -> pd.Series:
    """Distance of each point to (max x, max y), both axes divided by their maximum."""
    scale_x = points[x].max() or 1.0
    scale_y = points[y].max() or 1.0
    return np.hypot(1 - points[x] / scale_x, 1 - points[y] / scale_y)


def best_near_corner(points: pd.DataFrame, x: str = X, y: str = Y) -> pd.Series:
    """The point nearest the corner of the best rates (see the module's docstring)."""
    return points.loc[corner_distance(points, x, y).idxmin()]
