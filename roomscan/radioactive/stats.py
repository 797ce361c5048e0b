"""The statistics of radioactive-data verification: carriers, the cosine null law, Fisher's combination.

Under the null hypothesis (the tested classifier never saw marked images) a class weight ``w`` is independent of
its carrier ``u``; for a direction uniform on the sphere in ``d`` dimensions the cosine ``c = <w, u> / |w|`` has
density proportional to ``(1 - c^2)^((d - 3) / 2)`` on ``[-1, 1]``, so ``c^2`` follows ``Beta(1/2, (d - 1)/2)`` and,
for ``t >= 0``::

    P(c >= t) = 0.5 * I_{1 - t^2}((d - 1) / 2, 1 / 2)

(``I`` the regularised incomplete beta function). :func:`cosine_pvalue` gives this one-sided p-value (small when the
weight leans towards the carrier), :func:`combine_pvalues` pools classes with Fisher's method.

Example:
    >>> carriers = random_carriers(3, 128, seed=0)
    >>> float(cosine_pvalue(0.0, 128))
    0.5
    >>> p = combine_pvalues(cosine_pvalue([0.31, 0.28, 0.35], 128))
    >>> p < 1e-4
    True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roomscan.radioactive.errors import RadioactiveError

try:
    from scipy import special, stats
except ModuleNotFoundError as exc:  # pragma: no cover - scipy comes with the extra
    raise RadioactiveError("radioactive data needs scipy: pip install 'roomscan[radioactive]'") from exc

__all__ = ["combine_pvalues", "cosine_pvalue", "random_carriers", "row_cosines"]

# Cosines computed in float32 can land a few ulps outside [-1, 1]; beyond this they are a caller's mistake.
_COS_SLACK = 1e-5


def _check_dim(d: int) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"d must be a whole number of dimensions (got {d!r})")  # noqa: TRY004 - one type for bad d
    if d < 2:
        raise ValueError(f"d must be at least 2 dimensions for a cosine to be random (got {d})")
    return int(d)


def cosine_pvalue(c: ArrayLike, d: int) -> NDArray[np.float64]:
    """One-sided p-value ``P(C >= c)`` of a cosine ``c`` with a fixed direction, for a uniform random direction in ``d``.

    Exact (no normal approximation), vectorised, and accurate in the far tail: ``1 - c^2`` is formed as
    ``(1 - c)(1 + c)`` so cosines near 1 keep their precision, and large ``d`` underflows only below ~1e-308.

    Args:
        c: one cosine or an array of them, each in ``[-1, 1]``.
        d: the dimension of the space (the marking network's feature dimension), at least 2.

    Returns:
        an array shaped like ``c``: ``0.5`` at ``c = 0``, towards 0 as ``c`` nears 1, towards 1 as ``c`` nears -1.

    Raises:
        ValueError: ``d`` not a whole number >= 2, or a cosine that is NaN or outside ``[-1, 1]``.

    Example:
        >>> cosine_pvalue([-0.2, 0.0, 0.2], 64).round(4).tolist()
        [0.9449, 0.5, 0.0551]
    """
    d = _check_dim(d)
    cos = np.asarray(c, dtype=np.float64)
    if np.isnan(cos).any():
        raise ValueError(
            "a cosine is NaN: the weight or carrier it came from has zero length or is not finite"
        )
    if (np.abs(cos) > 1 + _COS_SLACK).any():
        worst = float(cos.flat[np.argmax(np.abs(cos))])
        raise ValueError(f"a cosine must lie in [-1, 1] (got {worst:g}); normalise both vectors first")
    cos = np.clip(cos, -1.0, 1.0)
    a = np.abs(cos)
    one_minus_sq = (1.0 - a) * (1.0 + a)
    tail = 0.5 * special.betainc((d - 1) / 2.0, 0.5, one_minus_sq)  # P(C >= |c|)
    return np.where(cos >= 0, tail, 1.0 - tail)


def combine_pvalues(ps: ArrayLike) -> float:
    """Fisher's combination of independent p-values: ``-2 sum log p`` against chi-squared with ``2k`` dof.

    A p-value of exactly 0 (an underflowed tail) is taken as the smallest positive double so the result stays
    finite and tiny rather than NaN.

    Raises:
        ValueError: no p-values, or one that is NaN or outside ``[0, 1]``.

    Example:
        >>> round(combine_pvalues([0.5]), 6)
        0.5
        >>> combine_pvalues([0.01, 0.02, 0.03]) < 0.001
        True
    """
    p = np.asarray(ps, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("no p-values to combine: give at least one (one per class carrier)")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]; got " + ", ".join(f"{v:g}" for v in p[:5]))
    p = np.maximum(p, np.finfo(np.float64).tiny)
    statistic = -2.0 * float(np.log(p).sum())
    return float(stats.chi2.sf(statistic, 2 * p.size))


def random_carriers(n: int, d: int, seed: int, *, orthogonal: bool = False) -> NDArray[np.float64]:
    """``n`` random unit carriers in ``d`` dimensions, one per class (or per set of unlabelled images).

    Rows are isotropic Gaussian draws normalised to length 1, so each is uniform on the sphere: exactly the null
    model :func:`cosine_pvalue` assumes. With ``orthogonal=True`` (needs ``n <= d``) the rows are also mutually
    orthogonal (a uniformly random orthonormal frame), so marks of different classes cannot cancel.

    Args:
        n: how many carriers (>= 1).
        d: their dimension (>= 2), the marking network's feature dimension.
        seed: the random seed; the same seed gives the same carriers on every machine.
        orthogonal: make the rows orthonormal.

    Returns:
        a float64 array ``[n, d]`` of unit rows.

    Example:
        >>> u = random_carriers(4, 16, seed=1, orthogonal=True)
        >>> u.shape, bool(np.allclose(u @ u.T, np.eye(4)))
        ((4, 16), True)
    """
    d = _check_dim(d)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a whole number of carriers >= 1 (got {n!r})")
    if orthogonal and n > d:
        raise ValueError(
            f"{n} orthogonal carriers do not fit in {d} dimensions; use orthogonal=False or fewer carriers"
        )
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((int(n), d))  # [n, d]
    if orthogonal:
        q, r = np.linalg.qr(g.T)  # q [d, n]; signs of r's diagonal fixed so the frame is uniform (Haar)
        g = (q * np.sign(np.diag(r))).T
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def row_cosines(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Cosine between each row of ``a`` and the same row of ``b`` (both ``[n, d]``): e.g. class weights vs carriers.

    Raises:
        ValueError: shapes that differ, or a row of zero length (its cosine is undefined).
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"cannot compare rows of shapes {a.shape} and {b.shape}: both must be [n, d]")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if (norms == 0).any() or not np.isfinite(norms).all():
        raise ValueError("a row has zero length or is not finite, so its cosine is undefined")
    return (a * b).sum(axis=1) / norms
