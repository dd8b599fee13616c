"""SchNet's filters as tables: each interaction's W(d)·fc(d) as a quintic Hermite spline in d.

The filter network of an interaction depends on the distance only, so an exported model can
replace it by the spline through its value, slope and curvature at knots d_k = k h (k = 0 .. M,
M h = cutoff), computed in float64 by forward-mode autograd, stored per interval as the
coefficients of a polynomial in t = d/h − k. Quintic Hermite interpolation is C² and its error
falls as h⁶ in the values and h⁵ in the slopes: at h = 0.02 Å the spline of a SchNet filter (20
Gaussians over 5 Å, random or trained weights) is ~1e-10 (values) and ~3e-9 (slopes) of the
filter's largest value and slope away from the network, a hundred times below the network's own
float32 rounding (~6e-7). `tabulation_error` measures this for a table on a dense grid, and
`choose_tables` refines h until it is within a tolerance.
"""
import math
from typing import List, Optional, Tuple

import torch

from mlpot.model.representations.convolution import smooth_filter

DEFAULT_SPACING = 0.02    # Å, the first knot spacing tried
TOLERANCE = 1e-8          # largest error of values and slopes, relative to their largest magnitude
FINEST_SPACING = 0.0025   # Å, refinement stops here


# coefficients of t^0 .. t^5 (rows) of the quintic Hermite basis of [y₀, m₀, q₀, y₁, m₁, q₁] (columns)
HERMITE_TO_POWERS = torch.tensor([
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.5, 0.0, 0.0, 0.0],
    [-10.0, -6.0, -1.5, 10.0, -4.0, 0.5],
    [15.0, 8.0, 1.5, -15.0, 7.0, -1.0],
    [-6.0, -3.0, -0.5, 6.0, -3.0, 0.5]], dtype=torch.float64)


def knot_spacing(cutoff: float, spacing: float) -> float:
    """The knot spacing (Å) used for a requested one: cutoff / ⌈cutoff / spacing⌉."""
    if not spacing > 0:
        raise ValueError(f"table spacing must be > 0 Å, got {spacing}")
    return cutoff / max(1, math.ceil(cutoff / spacing - 1e-9))


def filter_table(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, centers: torch.Tensor,
                 coeff: float, cutoff: float, spacing: float) -> Tuple[torch.Tensor, float]:
    """(table [M, 6F] float64, h): row k holds the coefficients c_0 .. c_5 (blocks of F) of
    W(d) = Σ_n c_n t^n, t = d/h − k, on interval k, where M = ⌈cutoff / spacing⌉, h = cutoff / M Å.
    They make the quintic Hermite interpolant of W, h W', h² W'' at the knots d_k = k h (W the filter
    times the cutoff; derivatives by forward-mode autograd in float64, at the cutoff from below).
    Stored as coefficients rather than knot values, the slope Σ n c_n t^(n−1) / h keeps the stored
    numbers' relative precision in float32 (no difference of neighbouring values divided by h)."""
    h = knot_spacing(cutoff, spacing)
    n_intervals = round(cutoff / h)
    knots = torch.arange(n_intervals + 1, dtype=torch.float64) * h
    weights = [t.detach().double() for t in (w1, b1, w2, b2, centers)]

    def value(d):
        return smooth_filter(d, weights[0], weights[1], weights[2], weights[3], weights[4], coeff, cutoff)

    def slope(d):
        return torch.func.jvp(value, (d,), (torch.ones_like(d),))[1]

    slopes, curvature = torch.func.jvp(slope, (knots,), (torch.ones_like(knots),))
    y, m, q = value(knots), h * slopes, h * h * curvature     # [M + 1, F] each
    hermite = torch.stack([y[:-1], m[:-1], q[:-1], y[1:], m[1:], q[1:]], dim=1)   # [M, 6, F]
    return torch.einsum("nj,kjf->knf", HERMITE_TO_POWERS, hermite).reshape(n_intervals, -1), h


def spline_filter(d: torch.Tensor, table: torch.Tensor, spacing: float, cutoff: float) -> torch.Tensor:
    """The tabulated filter [E, F] at d [E] Å: Σ_n c_n t^n of table [M, 6F] (filter_table) on the
    interval of each d; 0 from the cutoff on."""
    n_features = table.shape[1] // 6
    u = d.clamp(min=0.0) / spacing
    k = torch.clamp(torch.floor(u.detach()), 0, table.shape[0] - 1).long()
    t = (u - k.to(u.dtype))[:, None]
    c = table[k]
    w = c[:, 5 * n_features:]
    for n in range(4, -1, -1):
        w = w * t + c[:, n * n_features:(n + 1) * n_features]
    return w * (d < cutoff).to(w.dtype)[:, None]


def tabulation_error(weights: List[torch.Tensor], coeff: float, cutoff: float, table: torch.Tensor,
                     spacing: float, points: int = 16) -> Tuple[float, float]:
    """(value error, slope error) of a table against its filter network: the largest deviations of
    the spline's values and slopes on `points` distances inside every interval, relative to the
    largest |W| and |W'| there; all in float64. weights = [w1, b1, w2, b2, centers]."""
    w = [t.detach().double() for t in weights]
    n_intervals = table.shape[0]
    t = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    d = ((torch.arange(n_intervals, dtype=torch.float64)[:, None] + t) * spacing).reshape(-1)
    d = d[d < cutoff]
    ones = torch.ones_like(d)
    exact, exact_slope = torch.func.jvp(lambda r: smooth_filter(r, w[0], w[1], w[2], w[3], w[4], coeff, cutoff),
                                        (d,), (ones,))
    approx, approx_slope = torch.func.jvp(lambda r: spline_filter(r, table.double(), spacing, cutoff), (d,), (ones,))

    def relative(a, b):
        return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))

    return relative(approx, exact), relative(approx_slope, exact_slope)


def choose_tables(networks: List[List[torch.Tensor]], coeff: float, cutoff: float, spacing: float = 0.0,
                  tolerance: Optional[float] = None) -> Tuple[List[torch.Tensor], float, float, float]:
    """(tables, h, value error, slope error) for the filter networks of one SchNet (each
    [w1, b1, w2, b2, centers]) on one knot spacing: `spacing` Å if given (> 0), else the first of
    DEFAULT_SPACING, /2, /4, ... (down to FINEST_SPACING) whose largest error over all networks is
    within `tolerance` (default TOLERANCE). Errors as tabulation_error."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    if spacing < 0 or not math.isfinite(spacing):
        raise ValueError(f"table spacing must be > 0 Å (or 0: chosen by the tables' error), got {spacing}")
    h = spacing if spacing > 0 else DEFAULT_SPACING
    while True:
        tables, value_error, slope_error = [], 0.0, 0.0
        for w in networks:
            table, used = filter_table(w[0], w[1], w[2], w[3], w[4], coeff, cutoff, h)
            errors = tabulation_error(w, coeff, cutoff, table, used)
            tables.append(table)
            value_error, slope_error = max(value_error, errors[0]), max(slope_error, errors[1])
        if spacing > 0 or max(value_error, slope_error) <= tolerance or h / 2 < FINEST_SPACING * (1 - 1e-9):
            return tables, used, value_error, slope_error
        h /= 2
