"""cossin: the cosine–sine decomposition X = U CS Vᴴ of a unitary X.
Derivation: docs/derivations/cossin.md

X (m×m, unitary) is partitioned with X11 p×q; U = blockdiag(U1, U2), V = blockdiag(V1, V2)
and CS = Σ(θ) is SciPy's middle factor: r = min(p, q, m−p, m−q) rotations
[[cos θ, ∓sin θ], [±sin θ, cos θ]] pairing (u1_i, u2_i) with (v1_i, v2_i), and the signed
identity blocks of sizes k11 = min(p, q) − r, k12, k21, k22 pairing a single column of
U1 or U2 with one of V1 or V2.

The rule differentiates the decomposition of the unitary polar factor of X: with
W = skew(Vᴴ Xᴴ Ẋ V) (V in the default sign convention: swap_sign=True flips U2 and V2),

    W = Σᵀ A Σ − B + J(θ̇),   A = Uᴴ U̇ ∈ u(p) ⊕ u(m−p),   B = Vᴴ V̇ ∈ u(q) ⊕ u(m−q)

(the Cartan decomposition of the unitary Lie algebra) splits entrywise into 1×1, 2×2 and
4×4 systems, solved in closed form (cossin.md, section 4):

    θ̇ = −Re diag(W[r1, r2])
    A22 − A11 = (W12 + W21) ∘ 1/sin(θ_i + θ_j),   A11 + A22 = (W12 − W21) ∘ 1/sin(θ_i − θ_j)
    pair i with an identity block: one division by sin θ_i or cos θ_i
    identity blocks among themselves: copies of W (half to A, half to B in a block)

and U̇ = U A, V̇ᴴ = −B Vᴴ.  A tangent along X's normal space (Ẋ = X H, H Hermitian) gives 0.
The reverse rule is the adjoint of the same linear map (traced once with linalgad's
vjp), so both are differentiable and second order works.

Gauge: the common phase of (u1_i, u2_i, v1_i, v2_i) (complex) raises ValueError when a loss
depends on it; rotations inside a cluster of equal angles, inside an identity block of
order ≥ 2, and at angles 0 or π/2 give a GaugeWarning (the basis is held fixed).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S

__all__ = ["cossin", "RULES"]

_OP = "cossin"


def _sizes(m, p, q):
    """(r, k11, k12, k21, k22): SciPy's rotation count and identity-block orders."""
    r = min(p, q, m - p, m - q)
    return r, min(p, q) - r, min(p, m - q) - r, min(m - p, q) - r, min(m - p, m - q) - r


def _groups(m, p, q):
    """Index ranges (lo, hi) of the groups: in V coordinates (columns of blockdiag(V1, V2))
    and, per factor, in local coordinates of U1, U2, V1, V2."""
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    V = {"g11": (0, k11), "r1": (k11, k11 + r), "g21": (k11 + r, q),
         "g22": (q, q + k22), "r2": (q + k22, q + k22 + r), "g12": (q + k22 + r, m)}
    return r, V


# -- forward ------------------------------------------------------------------------------------

def cossin_forward(X, *, p, q, swap_sign):
    return tuple(kernels_for(X).cossin(X, p, q, swap_sign=swap_sign))


# -- the tangent map (differentiable, written once; the reverse rule is its adjoint) -------------

def _blk(W, V, a, b):
    return ops.getitem(W, (Ellipsis, slice(*V[a]), slice(*V[b])))


def _block3(rows):
    """A matrix from a 3×3 grid of blocks, skipping empty rows and columns."""
    out = []
    for row in rows:
        parts = [x for x in row if 0 not in ops._shape(x)[-2:]]
        if not parts:
            continue
        out.append(parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1))
    return out[0] if len(out) == 1 else ops.concatenate(out, axis=-2)


def _masks(theta):
    """Concrete masks: pairs of (nearly) equal angles (off the diagonal), angles at 0 (sin)
    or π/2 (cos), and pairs with sin(θ_i + θ_j) ≈ 0.  None where nothing is degenerate."""
    tv = C.value(theta)
    xp = namespace_of(tv)
    tol = S.gap_tol(tv.dtype)
    r = tv.shape[-1]
    if r == 0 or tv.size == 0:
        return None, None, None, None
    gap = xp.abs(tv[..., :, None] - tv[..., None, :])
    eye = xp.eye(r, dtype=bool)
    cl = (gap <= tol) & ~eye
    low = xp.abs(xp.sin(tv)) <= tol
    high = xp.abs(xp.cos(tv)) <= tol
    both = (low[..., :, None] & low[..., None, :]) | (high[..., :, None] & high[..., None, :])
    return (cl if bool(cl.any()) else None, low if bool(low.any()) else None,
            high if bool(high.any()) else None, both if bool(both.any()) else None)


def _safe_inverse(x, zero):
    if zero is None:
        return 1 / x
    return ops.where(zero, 0, 1 / ops.where(zero, 1, x))


def _solve(W, theta, m, p, q):
    """(A1, A2, B1, B2, θ̇) from W = skew(Vᴴ Xᴴ Ẋ V) (cossin.md, section 4)."""
    r, V = _groups(m, p, q)
    B = lambda a, b: _blk(W, V, a, b)        # noqa: E731
    half = lambda x: 0.5 * x                 # noqa: E731
    cl, low, high, both = _masks(theta)
    if r:
        c, s = ops.cos(theta), ops.sin(theta)
        cc, sc = ops.expand_dims(c, -1), ops.expand_dims(s, -1)
        cr, sr = ops.expand_dims(c, -2), ops.expand_dims(s, -2)
        inv_s = ops.expand_dims(_safe_inverse(s, low), -1)
        inv_c = ops.expand_dims(_safe_inverse(c, high), -1)
        ti, tj = ops.expand_dims(theta, -1), ops.expand_dims(theta, -2)
        txp = namespace_of(C.peek(theta))
        eye = txp.eye(r, dtype=bool)
        zm = eye if cl is None else (cl | eye)
        inv_m = _safe_inverse(ops.sin(ti - tj), zm)
        inv_p = _safe_inverse(ops.sin(ti + tj), both)
        W11, W12, W21, W22 = B("r1", "r1"), B("r1", "r2"), B("r2", "r1"), B("r2", "r2")
        D = (W12 + W21) * inv_p                                    # A22 − A11
        Ssum = (W12 - W21) * inv_m + 0.5 * txp.eye(r, dtype=C.peek(theta).dtype) * (W11 + W22)
        A11, A22 = 0.5 * (Ssum - D), 0.5 * (Ssum + D)
        B11 = cc * A11 * cr + sc * A22 * sr - W11
        B22 = sc * A11 * sr + cc * A22 * cr - W22
        d = ops.diagonal(W12, 0, -2, -1)
        theta_dot = -(ops.real(d) if ops._is_complex(d) else d)
        x11 = -B("r2", "g11") * inv_s
        y11 = cc * x11 - B("r1", "g11")
        x21 = B("r2", "g21") * inv_c
        y21 = sc * x21 - B("r1", "g21")
        x22 = B("r1", "g22") * inv_s
        y22 = cc * x22 - B("r2", "g22")
        x12 = -B("r1", "g12") * inv_c
        y12 = sc * x12 - B("r2", "g12")
    else:
        A11 = A22 = B11 = B22 = B("r1", "r1")
        theta_dot = ops.diagonal(ops.real(A11) if ops._is_complex(A11) else A11, 0, -2, -1)
        x11, y11 = B("r1", "g11"), B("r1", "g11")
        x21, y21 = B("r2", "g21"), B("r1", "g21")
        x22, y22 = B("r1", "g22"), B("r2", "g22")
        x12, y12 = B("r1", "g12"), B("r2", "g12")
    H = ops.mH
    A1 = _block3([[half(B("g11", "g11")), -H(x11), -B("g11", "g12")],
                  [x11, A11, x12],
                  [-B("g12", "g11"), -H(x12), half(B("g12", "g12"))]])
    A2 = _block3([[half(B("g22", "g22")), -H(x22), B("g22", "g21")],
                  [x22, A22, x21],
                  [B("g21", "g22"), -H(x21), half(B("g21", "g21"))]])
    B1 = _block3([[-half(B("g11", "g11")), -H(y11), -B("g11", "g21")],
                  [y11, B11, y21],
                  [-B("g21", "g11"), -H(y21), -half(B("g21", "g21"))]])
    B2 = _block3([[-half(B("g22", "g22")), -H(y22), -B("g22", "g12")],
                  [y22, B22, y12],
                  [-B("g12", "g22"), -H(y12), -half(B("g12", "g12"))]])
    return A1, A2, B1, B2, theta_dot


def _vfull(v1h, v2h, sign):
    """blockdiag(V1, sign·V2) (a plain sign: −1 turns swap_sign's factors to the default)."""
    V1, V2 = ops.mH(v1h), ops.mH(v2h)
    if sign < 0:
        V2 = -V2
    return _blockdiag(V1, V2)


def _blockdiag(a, b):
    sa, sb = ops._shape(a), ops._shape(b)
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    xp = namespace_of(C.peek(a))
    dt = np.result_type(C.peek(a).dtype, C.peek(b).dtype)
    z1 = xp.zeros(batch + (sa[-2], sb[-1]), dtype=dt)
    z2 = xp.zeros(batch + (sb[-2], sa[-1]), dtype=dt)
    if sa[:-2] != batch:
        a = ops.broadcast_to(a, batch + sa[-2:])
    if sb[:-2] != batch:
        b = ops.broadcast_to(b, batch + sb[-2:])
    return ops.concatenate([ops.concatenate([a, z1], axis=-1),
                            ops.concatenate([z2, b], axis=-1)], axis=-2)


def _tangents(X, X_dot, out, p, q, swap_sign):
    """(U̇1, U̇2, θ̇, V̇1ᴴ, V̇2ᴴ) for the tangent X_dot (linear in it)."""
    u1, u2, theta, v1h, v2h = out
    m = ops._shape(X)[-1]
    Vf = _vfull(v1h, v2h, -1 if swap_sign else 1)
    XV = ops.matmul(X, Vf)
    Mx = ops.matmul(ops.mH(XV), ops.matmul(X_dot, Vf))
    W = 0.5 * (Mx - ops.mH(Mx))
    A1, A2, B1, B2, theta_dot = _solve(W, theta, m, p, q)
    return (ops.matmul(u1, A1), ops.matmul(u2, A2), theta_dot,
            -ops.matmul(B1, v1h), -ops.matmul(B2, v2h))


def _check_unitary(X):
    """GaugeWarning when X is visibly not unitary: the tangent map uses Xᴴ for the polar
    factor's, so its error is of the order of ‖XᴴX − I‖ (c² − 1, relative, at X = c Q)."""
    xv = C.value(X)
    xp = namespace_of(xv)
    G = xp.conj(xp.swapaxes(xv, -1, -2)) @ xv
    dev = float(xp.abs(G - xp.eye(xv.shape[-1], dtype=G.dtype)).max()) if G.size else 0.0
    if not dev <= float(np.finfo(xv.dtype).eps) ** (1.0 / 3.0):
        warnings.warn(
            f"cossin: X is not unitary (max |XᴴX − I| = {dev:.2g}); SciPy's factors are "
            "those of (about) its unitary polar factor, but the derivative returned is that "
            "of cossin(polar(X)) only to first order in XᴴX − I (for X = c·Q it is c² times "
            "too large). Pass polar(X)[0] for the exact polar convention (cossin.md, "
            "section 6).", S.GaugeWarning, stacklevel=5)


def cossin_jvp(tangents, out, res, X, *, p, q, swap_sign):
    (X_dot,) = tangents
    _check_unitary(X)
    if X_dot is None:
        X_dot = ops.zeros_like(X)
    return _tangents(X, X_dot, out, p, q, swap_sign)


# -- reverse: the gauge checks, then the adjoint of the tangent map ------------------------------

def _skew_plain(x):
    xp = namespace_of(x)
    return 0.5 * (x - xp.conj(xp.swapaxes(x, -1, -2)))


def _check_gauge(cts, out, m, p, q):
    """ValueError for a loss that depends on a common phase of paired columns; GaugeWarning
    for one that depends on a rotation the decomposition leaves free (cossin.md, section 6)."""
    u1b, u2b, tb, v1hb, v2hb = cts
    cl, low, high, _ = _masks(out[2])
    loose = []
    if tb is not None and (cl is not None or low is not None or high is not None):
        bv = C.value(tb)
        xp = namespace_of(bv)
        # per matrix of a stack: one matrix's large cotangent must not hide another's
        sc = xp.abs(bv).max(axis=-1, keepdims=True)
        if cl is not None:
            diff = xp.abs(bv[..., :, None] - bv[..., None, :])
            if bool((diff > S.values_tol(bv.dtype) * sc[..., None])[cl].any()):
                loose.append("a single one of several equal angles")
        edge = low if high is None else (high if low is None else low | high)
        big = (xp.abs(bv) > S.values_tol(bv.dtype) * sc) & (sc > 0)
        if edge is not None and bool(big[edge].any()):
            loose.append("an angle at 0 or π/2 (θ_i is not differentiable there: it has a "
                         "kink, and −Re W12_ii is returned, not a one-sided derivative)")
    if u1b is None and u2b is None and v1hb is None and v2hb is None:
        _warn_loose(loose)
        return
    u1, u2, theta, v1h, v2h = (C.value(o) for o in out)
    xp = namespace_of(u1)
    H = lambda x: xp.conj(xp.swapaxes(x, -1, -2))       # noqa: E731
    full = [H(u1) @ C.value(u1b) if u1b is not None else xp.zeros(u1.shape, u1.dtype),
            H(u2) @ C.value(u2b) if u2b is not None else xp.zeros(u2.shape, u2.dtype),
            C.value(v1hb) @ H(v1h) if v1hb is not None else xp.zeros(v1h.shape, v1h.dtype),
            C.value(v2hb) @ H(v2h) if v2hb is not None else xp.zeros(v2h.shape, v2h.dtype)]
    Ab1, Ab2 = _skew_plain(full[0]), _skew_plain(full[1])
    Bb1, Bb2 = -_skew_plain(full[2]), -_skew_plain(full[3])
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    # judged against the cotangents' own size (their Hermitian parts included), matrix by
    # matrix of a stack: a loss invariant under the gauge leaves a skew part of pure
    # rounding, as large as itself
    size = None
    for x in full:
        if x.size:
            sx = xp.abs(x).max(axis=(-2, -1))
            size = sx if size is None else xp.maximum(size, sx)
    if size is None or not bool((size > 0).any()):
        _warn_loose(loose)
        return
    tol = S.rel_tol(u1.dtype) * size[..., None]          # against (..., k) diagonals
    tol2 = tol[..., None]                                 # against (..., k, k) blocks
    sl = lambda lo, n: slice(lo, lo + n)                 # noqa: E731
    pairs = [  # (A part, B part) of each group's stabilizer
        (Ab1[..., sl(0, k11), sl(0, k11)], Bb1[..., sl(0, k11), sl(0, k11)]),
        (Ab1[..., sl(k11 + r, k12), sl(k11 + r, k12)],
         Bb2[..., sl(k22 + r, k12), sl(k22 + r, k12)]),
        (Ab2[..., sl(k22 + r, k21), sl(k22 + r, k21)],
         Bb1[..., sl(k11 + r, k21), sl(k11 + r, k21)]),
        (Ab2[..., sl(0, k22), sl(0, k22)], Bb2[..., sl(0, k22), sl(0, k22)]),
    ]
    rot = None
    if r:
        rot = (Ab1[..., sl(k11, r), sl(k11, r)] + Ab2[..., sl(k22, r), sl(k22, r)]
               + Bb1[..., sl(k11, r), sl(k11, r)] + Bb2[..., sl(k22, r), sl(k22, r)])
    gam = [a + b for a, b in pairs] + ([rot] if rot is not None else [])
    if u1.dtype.kind == "c":
        for g in gam:
            if g.size and bool((xp.abs(xp.diagonal(g, 0, -2, -1).imag) > tol).any()):
                raise ValueError(
                    "cossin: the loss depends on the common phase of a set of paired "
                    "columns (u1_i, u2_i, v1_i, v2_i), or of a column of an identity block "
                    "with its partner, which is arbitrary (any e^{iφ} multiple of all of "
                    "them is an equally valid output), so its gradient is not defined. "
                    "Make the loss invariant under that phase (e.g. u1_i v1_iᴴ, U1 U1ᴴ, "
                    "U CS Vh).")
    for g in gam[:4]:
        k = g.shape[-1]
        if k >= 2:
            off = ~xp.eye(k, dtype=bool)
            if bool((xp.abs(g) > tol2)[..., off].any()):
                loose.append("the basis of an identity block of order ≥ 2")
                break
    if cl is not None and rot is not None and bool((xp.abs(rot) > tol2)[cl].any()):
        loose.append("the basis inside a cluster of equal angles")
    if low is not None or high is not None:
        loose.append("the vectors of an angle at 0 or π/2 (a rotation meeting an identity "
                     "block)")
    _warn_loose(loose)


def _warn_loose(loose):
    if loose:
        warnings.warn(
            "cossin: the loss depends on " + "; ".join(loose) + ", which the decomposition "
            "leaves free or where it is not differentiable; the gradient returned holds "
            "that basis fixed (cossin.md, section 6).", S.GaugeWarning, stacklevel=5)


def cossin_vjp(cts, needs, out, res, X, *, p, q, swap_sign):
    if all(c is None for c in cts):
        return (None,)
    m = ops._shape(X)[-1]
    _check_unitary(X)
    _check_gauge(cts, out, m, p, q)
    if any(isinstance(c, Tracer) for c in cts):
        S.check_second_order(_OP, out[2], cts)
    filled = tuple(ops.zeros_like(o) if c is None else c for c, o in zip(cts, out))
    xv = C.peek(X)
    zero = namespace_of(xv).zeros(xv.shape, dtype=xv.dtype)
    _, pull = transforms.vjp(lambda Xd: _tangents(X, Xd, out, p, q, swap_sign), zero)
    (X_bar,) = pull(filled)
    return (ops.fit(X_bar, X),)


_cossin = Primitive("cossin", cossin_forward, cossin_vjp, cossin_jvp, multiple_results=True)


# -- the public function --------------------------------------------------------------------------

def _atleast_2d(x):
    shape = ops._shape(x)
    if len(shape) >= 2:
        return x
    return ops.reshape(x, (1,) * (2 - len(shape)) + tuple(shape))


def _from_blocks(X):
    if not isinstance(X, Iterable) and not hasattr(X, "__len__"):
        raise ValueError("cossin: when p and q are None, X must be an Iterable containing the "
                         "subblocks of X")
    blocks = list(X)
    if len(blocks) != 4:
        raise ValueError(f"cossin: when p and q are None, exactly four arrays should be in X, "
                         f"got {len(blocks)}")
    x11, x12, x21, x22 = (_atleast_2d(C.array_arg(b)) for b in blocks)
    for name, b in zip(["x11", "x12", "x21", "x22"], (x11, x12, x21, x22)):
        if ops._shape(b)[-1] == 0:
            raise ValueError(f"cossin: {name} can't be empty")
    p, q = ops._shape(x11)[-2:]
    mmp, mmq = ops._shape(x22)[-2:]
    if tuple(ops._shape(x12)[-2:]) != (p, mmq):
        raise ValueError(f"cossin: invalid x12 dimensions: desired {(p, mmq)}, got "
                         f"{tuple(ops._shape(x12)[-2:])}")
    if tuple(ops._shape(x21)[-2:]) != (mmp, q):
        raise ValueError(f"cossin: invalid x21 dimensions: desired {(mmp, q)}, got "
                         f"{tuple(ops._shape(x21)[-2:])}")
    if p + mmp != q + mmq:
        raise ValueError("cossin: the subblocks have compatible sizes but don't form a square "
                         f"array (instead they form a {p + mmp}x{q + mmq} array). This might "
                         "be due to missing p, q arguments.")
    vals = [C.peek(b) for b in (x11, x12, x21, x22)]
    try:
        batch = np.broadcast_shapes(*(v.shape[:-2] for v in vals))
    except ValueError:
        raise ValueError("cossin: the stacks of the subblocks do not broadcast: "
                         f"{[v.shape for v in vals]}") from None
    dtype = C.result_dtype(_OP, *vals)
    bl = []
    for b, v in zip((x11, x12, x21, x22), vals):
        b = C.promote(b, dtype)
        if v.shape[:-2] != batch:
            b = ops.broadcast_to(b, batch + v.shape[-2:])
        bl.append(b)
    C.checked(_OP, ("x11", "x12", "x21", "x22"), bl, True)
    X = ops.concatenate([ops.concatenate(bl[:2], axis=-1), ops.concatenate(bl[2:], axis=-1)],
                        axis=-2)
    return X, p, q


def _cs_plain(xp, theta, m, p, q, swap_sign):
    """SciPy's middle factor from θ (plain arrays; a stack too)."""
    r, n11, n12, n21, n22 = _sizes(m, p, q)
    batch = theta.shape[:-1]
    CS = xp.zeros(batch + (m, m), dtype=theta.dtype)
    _fill_identities(CS, m, p, q, swap_sign)
    c, s = xp.cos(theta), xp.sin(theta)
    i = xp.arange(r)
    CS[..., n11 + i, n11 + i] = c
    CS[..., p + n22 + i, q + n22 + i] = c
    CS[..., n11 + i, q + n22 + i] = s if swap_sign else -s
    CS[..., p + n22 + i, n11 + i] = -s if swap_sign else s
    return CS


def _fill_identities(CS, m, p, q, swap_sign):
    r, n11, n12, n21, n22 = _sizes(m, p, q)
    for rows, cols, n, sign in ((0, 0, n11, 1), (n11 + r, q + n22 + r, n12,
                                                 1 if swap_sign else -1),
                                (p + n22 + r, n11 + r, n21, -1 if swap_sign else 1),
                                (p, q, n22, 1)):
        for j in range(n):
            CS[..., rows + j, cols + j] = sign


def _cs_traced(theta, m, p, q, swap_sign, xp):
    """The middle factor from θ in differentiable operations: constant identity blocks plus
    E diag(cos θ) Fᵀ and E diag(±sin θ) Fᵀ placements."""
    r, n11, n12, n21, n22 = _sizes(m, p, q)
    tv = C.peek(theta)
    CS0 = xp.zeros((m, m), dtype=tv.dtype)
    _fill_identities(CS0, m, p, q, swap_sign)
    out = CS0
    if r:
        def sel(lo):
            E = xp.zeros((m, r), dtype=tv.dtype)
            E[lo + xp.arange(r), xp.arange(r)] = 1
            return E
        Er1, Er2, Fr1, Fr2 = sel(n11), sel(p + n22), sel(n11), sel(q + n22)
        c = ops.expand_dims(ops.cos(theta), -2)
        s = ops.expand_dims(ops.sin(theta), -2)
        eta = 1 if swap_sign else -1
        out = (ops.matmul(Er1 * c, Fr1.T) + ops.matmul(Er2 * c, Fr2.T)
               + eta * ops.matmul(Er1 * s, Fr2.T) - eta * ops.matmul(Er2 * s, Fr1.T)) + CS0
    else:
        out = ops.broadcast_to(CS0, tuple(tv.shape[:-1]) + (m, m)) if tv.ndim > 1 else CS0
    return out


def cossin(X, p=None, q=None, separate=False, swap_sign=False, compute_u=True,
           compute_vh=True):
    """Cosine–sine decomposition of a unitary (orthogonal) matrix, differentiable
    (scipy.linalg.cossin).

    ``X`` (..., m, m) is partitioned with X11 of shape (p, q), or given as the iterable
    ``(X11, X12, X21, X22)`` when p and q are None.  Returns ``(u, cs, vdh)`` with
    ``X = u @ cs @ vdh``, ``u = blockdiag(u1, u2)``, ``vdh = blockdiag(v1h, v2h)``, or, with
    ``separate=True``, ``((u1, u2), theta, (v1h, v2h))``.  ``compute_u`` /
    ``compute_vh`` False give empty arrays in place of those factors, as SciPy does.
    Stacks are decomposed matrix by matrix (``separate=True`` stacks too, where SciPy
    1.17 fails to stack the tuples).

    Valid when: X is unitary (to rounding; the values are not checked, as in SciPy).
    Derivatives are those of the decomposition of the unitary polar factor of X: exact
    along the tangent space of the unitary group (Ẋ = X K, K skew-Hermitian); a normal
    direction (Ẋ = X H, H Hermitian) gets zero (cossin.md, section 1).  At a non-unitary X
    they are the polar ones only to first order in XᴴX − I (c² times too large at X = c·Q);
    derivatives warn (GaugeWarning) when max|XᴴX − I| > eps^(1/3): decompose polar(X)[0]
    for the exact convention (cossin.md, section 6).  θ is differentiable where the angles
    are distinct and in (0, π/2) (at 0 or π/2 it has a kink; the value returned there is not
    a one-sided derivative, and a reverse pass warns); U and Vh carry a gauge:
    a loss that depends on the common phase of paired columns raises ValueError, one
    that depends on a rotation inside a cluster of equal angles, an identity block of order
    ≥ 2 or at an angle 0 or π/2 gets a GaugeWarning and the gradient with that basis held
    fixed.  Forward mode and all orders: the rule is written in differentiable operations
    (second derivatives within eps^(1/3) of equal angles warn, as svd's do).
    """
    if p or q:
        p = 1 if p is None else int(p)
        q = 1 if q is None else int(q)
        X = C.array_arg(X)
        xv = C.peek(X)
        if xv.ndim < 2 or xv.shape[-1] != xv.shape[-2]:
            raise ValueError("cossin: Cosine Sine decomposition only supports square "
                             f"matrices, got {xv.shape[-2:]}")
        m = xv.shape[-2]
        if p >= m or p <= 0:
            raise ValueError(f"cossin: invalid p={p}, 0<p<{m} must hold")
        if q >= m or q <= 0:
            raise ValueError(f"cossin: invalid q={q}, 0<q<{m} must hold")
        dtype = C.result_dtype(_OP, xv)
        C.checked(_OP, ("X",), (X,), True)
        X = C.promote(X, dtype)
    else:
        X, p, q = _from_blocks(X)
    xv = C.peek(X)
    m = xv.shape[-1]
    batch = xv.shape[:-2]
    xp = namespace_of(xv)
    swap_sign = bool(swap_sign)
    if 0 in batch:
        raise ValueError(f"cossin: zero-size batches are not supported (X has shape "
                         f"{xv.shape}), as in SciPy")
    if not isinstance(X, Tracer):
        u1, u2, theta, v1h, v2h = kernels_for(X).cossin(X, p, q, swap_sign=swap_sign,
                                                        compute_u=bool(compute_u),
                                                        compute_vh=bool(compute_vh))
    else:
        u1, u2, theta, v1h, v2h = _cossin(X, p=p, q=q, swap_sign=swap_sign)
    empty = xp.zeros(batch + (0, 0), dtype=xv.dtype)
    if not compute_u:
        u1 = u2 = empty
    if not compute_vh:
        v1h = v2h = empty
    if separate:
        return (u1, u2), theta, (v1h, v2h)
    U = _blockdiag(u1, u2) if compute_u else empty
    Vh = _blockdiag(v1h, v2h) if compute_vh else empty
    if isinstance(theta, Tracer):
        CS = _cs_traced(theta, m, p, q, swap_sign, xp)
    else:
        CS = _cs_plain(xp, theta, m, p, q, swap_sign)
    return U, CS, Vh


# -- registry ---------------------------------------------------------------------------------

def _gauge_free(u1, u2, theta, v1h, v2h, m, p, q, xp_like):
    """θ and products invariant under the decomposition's gauge: weighted projectors
    U1 diag(c) U1ᴴ (weights constant on identity blocks, distinct on the rotations), and
    the pairings u1_i v1_iᴴ, u2_i v2_iᴴ, u1_i u2_iᴴ of the rotations weighted by i."""
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    xp = namespace_of(C.peek(xp_like))
    rd = np.finfo(C.peek(xp_like).dtype).dtype

    def w(groups):
        parts = []
        for n, kind in groups:
            parts.append(np.full(n, {"a": 0.5, "b": 3.0}[kind]) if kind != "r"
                         else 1.0 + np.linspace(0.0, 1.0, n))
        return xp.asarray(np.concatenate(parts).astype(rd)) if parts else None

    cu1 = w([(k11, "a"), (r, "r"), (k12, "b")])
    cu2 = w([(k22, "a"), (r, "r"), (k21, "b")])
    cv1 = w([(k11, "a"), (r, "r"), (k21, "b")])
    cv2 = w([(k22, "a"), (r, "r"), (k12, "b")])
    V1, V2 = ops.mH(v1h), ops.mH(v2h)
    out = [theta,
           ops.matmul(u1 * cu1, ops.mH(u1)), ops.matmul(u2 * cu2, ops.mH(u2)),
           ops.matmul(V1 * cv1, v1h), ops.matmul(V2 * cv2, v2h)]
    if r:
        cr = xp.asarray((1.0 + np.linspace(0.0, 1.0, r)).astype(rd))
        U1r = ops.getitem(u1, (Ellipsis, slice(None), slice(k11, k11 + r)))
        U2r = ops.getitem(u2, (Ellipsis, slice(None), slice(k22, k22 + r)))
        V1hr = ops.getitem(v1h, (Ellipsis, slice(k11, k11 + r), slice(None)))
        V2hr = ops.getitem(v2h, (Ellipsis, slice(k22, k22 + r), slice(None)))
        out += [ops.matmul(U1r * cr, V1hr), ops.matmul(U2r * cr, V2hr),
                ops.matmul(U1r * cr, ops.mH(U2r))]
    return tuple(out)


def _rule_fun(a, p, q, swap_sign=False):
    """The registry's view: cossin of the unitary polar factor of a (so finite differences
    stay on the unitary group), reduced to gauge-invariant outputs."""
    from .polar import polar
    Xu = polar(a)[0]
    (u1, u2), theta, (v1h, v2h) = cossin(Xu, p, q, separate=True, swap_sign=swap_sign)
    return _gauge_free(u1, u2, theta, v1h, v2h, ops._shape(a)[-1], p, q, a)


_rule_fun.__doc__ = cossin.__doc__


def _rule_reference(a, p, q, swap_sign=False):
    import scipy.linalg
    m = a.shape[-1]
    flat = a.reshape((-1, m, m))
    outs = []
    for x in flat:
        Xu = scipy.linalg.polar(x)[0]
        (u1, u2), th, (v1h, v2h) = scipy.linalg.cossin(Xu, p=p, q=q, separate=True,
                                                       swap_sign=swap_sign)
        outs.append([np.asarray(t) for t in _gauge_free(u1, u2, th, v1h, v2h, m, p, q, x)])
    return tuple(np.stack([o[i] for o in outs]).reshape(a.shape[:-2] + outs[0][i].shape)
                 for i in range(len(outs[0])))


def _domain(m, p, q, **kw):
    """A well-conditioned matrix near a random unitary one (its polar factor is the
    decomposed matrix), p, q fixed."""
    def make(rng, _n, batch, dtype):
        Q = M.random_orthogonal(rng, m, batch, dtype)
        E = M.random_general(rng, m, batch, dtype)
        A = (Q + 0.2 * E / np.sqrt(m)).astype(dtype)
        return (A,), dict(p=p, q=q, **kw)
    return make


RULES = (
    Rule(
        name="cossin",
        fun=_rule_fun,
        primitive=_cossin,
        domains=(
            Domain("square-blocks", _domain(4, 2, 2), "4×4, p = q = 2 (no identity blocks)"),
            Domain("p-ne-q", _domain(5, 2, 3), "5×5, p = 2, q = 3 (one identity block)"),
            Domain("p-plus-q", _domain(6, 2, 2, swap_sign=True),
                   "6×6, p = q = 2, swap_sign (p + q < m: an identity block of order 2)"),
            Domain("tall-block", _domain(7, 4, 2),
                   "7×7, p = 4, q = 2 (the −I block of order 2 and an I of order 1)"),
            Domain("wide-block", _domain(6, 2, 4), "6×6, p = 2, q = 4 (two identity blocks)"),
        ),
        derivation="docs/derivations/cossin.md",
        reference=_rule_reference,
        references=("Sutton 2009, Computing the complete CS decomposition",
                    "Paige & Wei 1994, History and generality of the CS decomposition",
                    "Edelman, Arias & Smith 1998 (geometry of orthogonality constraints)"),
    ),
)
