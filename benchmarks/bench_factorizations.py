"""Factorization rules (issue 3): value+gradient cost of linalgad and its peers, as a ratio
to NumPy/SciPy's forward.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_factorizations.py [--quick] \
        [--rules inv,qr] [--peers ...] [--shapes 64x64,10000x4x4] [--out F] [-v]

One loss per rule, a fixed random weighted sum of the outputs, its gradient taken w.r.t.
every matrix input:

    inv               sum(W * inv(A))                       grad A
    det               sum(w * det(A))                       grad A     (|det A| = 1)
    slogdet           sum(w * slogdet(A).logabsdet)         grad A
    cholesky          sum(W * cholesky(A))  (lower)         grad A     (A SPD)
    cho_solve         sum(W * cho_solve((C, lower), b))     grad C, b  (C = cholesky(SPD))
    solve_triangular  sum(W * solve_triangular(T, b, lower)) grad T, b (dominant diagonal)
    lu_factor         sum(W * lu_factor(A).lu)  (packed)    grad A
    lu_solve          sum(W * lu_solve((lu, piv), b))       grad lu, b
    qr                sum(WQ * Q) + sum(WR * R)  (reduced)  grad A
    logdet            sum(w * logdet(A))  (PD, Cholesky)    grad A     (A SPD)

b and W of the solves are n x 8; w has the batch shape. Each cell is (value+grad time) /
(forward-only reference time), the reference being the fastest NumPy/SciPy forward of the
same operation on the same inputs; all measured in this one run, on one pinned core with
one thread. Every library's value and gradient are checked once, in float64, against a
closed form computed here with NumPy (the formulas of docs/derivations/, written out again
below); a disagreement is marked in the table.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import peers_factorizations as pf  # noqa: E402

K = 8  # right-hand sides of the solves
LIBS = ("linalgad", "linalgad-jit") + pf.PEER_NAMES   # -jit: lad.jit(value_and_grad(...))
SHAPES = [s for s in common.SHAPES if s[0] != "16x16"]  # n = 64, 256, 1024 and the stacks
QUICK_SHAPES = {"64x64", "10000x4x4"}
RTOL = 1e-6  # gradient agreement, float64
NOISY = 0.5  # a cell whose median round sits this far above its best is listed under the table
ROUNDS = 7   # interleaved rounds per cell (--quick: 3)


# --- small NumPy helpers (stacked: (..., n, n)) -------------------------------------------
def mT(x):
    return np.swapaxes(x, -1, -2)


def eye_like(x):
    return np.eye(x.shape[-1])


def tril_of_sym(S):
    """The cotangent of the lower triangle read by a rule, from a symmetric gradient S:
    2 tril(S, -1) + diag(S) (what a rule that reads one triangle returns)."""
    return 2.0 * np.tril(S, -1) + S * eye_like(S)


def perm_from_piv(piv):
    """LAPACK's 0-based row swap sequence (..., n) -> perm (..., n) with A[perm] = L U."""
    n = piv.shape[-1]
    perm = np.broadcast_to(np.arange(n), piv.shape).copy()
    for i in range(n):
        j = piv[..., i:i + 1].astype(np.intp)
        pi = perm[..., i:i + 1].copy()
        perm[..., i:i + 1] = np.take_along_axis(perm, j, axis=-1)
        np.put_along_axis(perm, j, pi, axis=-1)
    return perm


def take_rows(X, perm):
    return np.take_along_axis(X, perm[..., :, None], axis=-2)


def lu_factor_stacked(A):
    """scipy.linalg.lu_factor over a stack (a Python loop; used to build inputs only)."""
    if A.ndim == 2:
        return scipy.linalg.lu_factor(A, check_finite=False)
    flat = A.reshape((-1,) + A.shape[-2:])
    out = [scipy.linalg.lu_factor(a, check_finite=False) for a in flat]
    lu = np.stack([o[0] for o in out]).reshape(A.shape)
    piv = np.stack([o[1] for o in out]).reshape(A.shape[:-1])
    return lu, piv


# --- inputs ------------------------------------------------------------------------------
def general(rng, batch, n):
    return common.well_conditioned(rng, batch, n)


def unit_det(rng, batch, n):
    """Well conditioned (cond <= 3), scaled so that |det A| = 1 (det would overflow at n=1024)."""
    A = general(rng, batch, n)
    _, logabsdet = np.linalg.slogdet(A)
    return A / np.exp(logabsdet / n)[..., None, None]


def spd(rng, batch, n, cond=3.0):
    """Symmetric positive definite U diag(s) U^T, s in [1, cond]."""
    U, _ = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    s = rng.uniform(1.0, cond, size=batch + (n,))
    A = (U * s[..., None, :]) @ mT(U)
    return np.ascontiguousarray(0.5 * (A + mT(A)))


def dominant_lower(rng, batch, n):
    """Lower triangular, diagonal in [1, 2], off-diagonal in (-1/n, 1/n): strictly
    diagonally dominant by rows, hence well conditioned."""
    T = np.tril(rng.uniform(-1.0, 1.0, size=batch + (n, n)) / n, -1)
    T += np.eye(n) * rng.uniform(1.0, 2.0, size=batch + (n,))[..., None, :]
    return np.ascontiguousarray(T)


@dataclasses.dataclass
class Case:
    diff: list          # the inputs the gradient is taken w.r.t. (NumPy, float64)
    consts: dict        # weights and pivots, passed to every library the same way
    extra: dict = dataclasses.field(default_factory=dict)  # for references and checks only


def case_inv(rng, batch, n):
    return Case([general(rng, batch, n)], {"W": rng.standard_normal(batch + (n, n))})


def case_det(rng, batch, n):
    return Case([unit_det(rng, batch, n)], {"w": np.asarray(rng.standard_normal(batch))})


def case_slogdet(rng, batch, n):
    return Case([general(rng, batch, n)], {"w": np.asarray(rng.standard_normal(batch))})


def case_cholesky(rng, batch, n):
    return Case([spd(rng, batch, n)], {"W": rng.standard_normal(batch + (n, n))})


def case_cho_solve(rng, batch, n):
    C = np.ascontiguousarray(np.linalg.cholesky(spd(rng, batch, n)))  # clean lower factor
    return Case([C, rng.standard_normal(batch + (n, K))], {"W": rng.standard_normal(batch + (n, K))})


def case_solve_triangular(rng, batch, n):
    return Case([dominant_lower(rng, batch, n), rng.standard_normal(batch + (n, K))],
                {"W": rng.standard_normal(batch + (n, K))})


def case_lu_factor(rng, batch, n):
    return Case([general(rng, batch, n)], {"W": rng.standard_normal(batch + (n, n))})


def case_lu_solve(rng, batch, n):
    A = general(rng, batch, n)
    lu, piv = lu_factor_stacked(A)
    piv = piv.astype(np.int32)
    return Case([np.ascontiguousarray(lu), rng.standard_normal(batch + (n, K))],
                {"W": rng.standard_normal(batch + (n, K)), "piv": piv, "piv1": piv + 1},
                extra={"A": A})


def case_qr(rng, batch, n):
    return Case([general(rng, batch, n)], {"WQ": rng.standard_normal(batch + (n, n)),
                                           "WR": rng.standard_normal(batch + (n, n))})


def case_logdet(rng, batch, n):
    return Case([spd(rng, batch, n)], {"w": np.asarray(rng.standard_normal(batch))})


# --- closed forms: (value, [gradients]) in linalgad's convention --------------------------
# A rule that reads one triangle of an input (cholesky, logdet, cho_solve, solve_triangular,
# the two triangles of a packed lu) returns the cotangent of that triangle, zero elsewhere.
def exact_inv(A, c):
    Y = np.linalg.inv(A)
    return np.sum(c["W"] * Y), [-mT(Y) @ c["W"] @ mT(Y)]


def exact_det(A, c):
    d = np.linalg.det(A)
    return np.sum(c["w"] * d), [np.asarray(c["w"] * d)[..., None, None] * mT(np.linalg.inv(A))]


def exact_slogdet(A, c):
    _, logabsdet = np.linalg.slogdet(A)
    return np.sum(c["w"] * logabsdet), [c["w"][..., None, None] * mT(np.linalg.inv(A))]


def exact_cholesky(A, c):
    L = np.linalg.cholesky(A)
    X = mT(L) @ c["W"]
    G = np.tril(X) - 0.5 * X * eye_like(X)  # Phi(L^T Lbar)
    Linv = np.linalg.inv(L)
    A_h = mT(Linv) @ (0.5 * (G + mT(G))) @ Linv
    return np.sum(c["W"] * L), [tril_of_sym(A_h)]


def exact_cho_solve(C, b, c):
    A = C @ mT(C)
    x = np.linalg.solve(A, b)
    b_bar = np.linalg.solve(A, c["W"])
    C_bar = -np.tril((b_bar @ mT(x) + x @ mT(b_bar)) @ C)
    return np.sum(c["W"] * x), [C_bar, b_bar]


def exact_solve_triangular(T, b, c):
    x = np.linalg.solve(T, b)
    b_bar = np.linalg.solve(mT(T), c["W"])
    return np.sum(c["W"] * x), [np.tril(-b_bar @ mT(x)), b_bar]


def _unpack_lu(lu):
    I = eye_like(lu)
    return np.tril(lu, -1) + I, np.triu(lu)


def exact_lu_factor(A, c):
    """A[perm] = L U; M_bar = L^-T (tril(L^T L_bar, -1) + triu(U_bar U^T)) U^-T; A_bar[perm] = M_bar."""
    lu, piv = lu_factor_stacked(A)
    perm = perm_from_piv(piv)
    L, U = _unpack_lu(lu)
    W = c["W"]
    inner = np.tril(mT(L) @ np.tril(W, -1), -1) + np.triu(np.triu(W) @ mT(U))
    M_bar = np.linalg.solve(mT(L), mT(np.linalg.solve(U, mT(inner))))
    return np.sum(W * lu), [take_rows(M_bar, np.argsort(perm, axis=-1))]


def exact_lu_solve(lu, b, c):
    """x = U^-1 L^-1 b[perm]; back through the two triangular solves and the row gather."""
    perm = perm_from_piv(c["piv"])
    L, U = _unpack_lu(lu)
    y = np.linalg.solve(L, take_rows(b, perm))
    x = np.linalg.solve(U, y)
    y_bar = np.linalg.solve(mT(U), c["W"])
    U_bar = -np.triu(y_bar @ mT(x))
    p_bar = np.linalg.solve(mT(L), y_bar)
    L_bar = -np.tril(p_bar @ mT(y), -1)
    b_bar = take_rows(p_bar, np.argsort(perm, axis=-1))
    return np.sum(c["W"] * x), [L_bar + U_bar, b_bar]


def exact_qr(A, c):
    """M = R R_bar^T - Q_bar^T Q; A_bar = (Q_bar + Q copyltu(M)) R^-T (square A)."""
    Q, R = np.linalg.qr(A)
    WQ, WR = c["WQ"], c["WR"]
    M = R @ mT(WR) - mT(WQ) @ Q
    copyltu = np.tril(M, -1) + mT(np.tril(M, -1)) + M * eye_like(M)
    A_bar = mT(np.linalg.solve(R, mT(WQ + Q @ copyltu)))
    return np.sum(WQ * Q) + np.sum(WR * R), [A_bar]


def exact_logdet(A, c):
    L = np.linalg.cholesky(A)
    ld = 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return np.sum(c["w"] * ld), [tril_of_sym(c["w"][..., None, None] * np.linalg.inv(A))]


# --- forward-only references: [(label, fn)] for this case; the fastest is the reference -----
def refs_inv(case, batched):
    (A,) = case.diff
    out = [("numpy", lambda: np.linalg.inv(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.inv(A, check_finite=False)))
    return out


def refs_det(case, batched):
    (A,) = case.diff
    out = [("numpy", lambda: np.linalg.det(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.det(A, check_finite=False)))
    return out


def refs_slogdet(case, batched):
    (A,) = case.diff
    return [("numpy", lambda: np.linalg.slogdet(A))]


def refs_cholesky(case, batched):
    (A,) = case.diff
    out = [("numpy", lambda: np.linalg.cholesky(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.cholesky(A, lower=True, check_finite=False)))
    return out


def refs_cho_solve(case, batched):
    C, b = case.diff
    out = [("scipy", lambda: scipy.linalg.cho_solve((C, True), b, check_finite=False))]
    if not batched:  # potrs wants Fortran order: f2py copies a C-ordered factor on every call
        CF = np.asfortranarray(C)
        out.append(("scipy, F-order c", lambda: scipy.linalg.cho_solve((CF, True), b,
                                                                       check_finite=False)))
    if batched:  # SciPy loops over the stack in Python; NumPy has no cho_solve
        out.append(("numpy:solve(CCᵀ,b) proxy", lambda: np.linalg.solve(C @ mT(C), b)))
    return out


def refs_solve_triangular(case, batched):
    T, b = case.diff
    out = [("scipy", lambda: scipy.linalg.solve_triangular(T, b, lower=True, check_finite=False))]
    if batched:
        out.append(("numpy:solve proxy", lambda: np.linalg.solve(T, b)))
    return out


def refs_lu_factor(case, batched):
    (A,) = case.diff
    out = [("scipy", lambda: scipy.linalg.lu_factor(A, check_finite=False))]
    if batched:  # np.linalg.det runs the same getrf on every matrix (+ a product)
        out.append(("numpy:det (getrf) proxy", lambda: np.linalg.det(A)))
    return out


def refs_lu_solve(case, batched):
    lu, b = case.diff
    piv = case.consts["piv"]
    out = [("scipy", lambda: scipy.linalg.lu_solve((lu, piv), b, check_finite=False))]
    if not batched:  # getrs wants Fortran order (what lu_factor returns): see refs_cho_solve
        luF = np.asfortranarray(lu)
        out.append(("scipy, F-order lu", lambda: scipy.linalg.lu_solve((luF, piv), b,
                                                                       check_finite=False)))
    if batched:  # an upper bound: factors A again
        A = case.extra["A"]
        out.append(("numpy:solve(A,b) proxy", lambda: np.linalg.solve(A, b)))
    return out


def refs_qr(case, batched):
    (A,) = case.diff
    out = [("numpy", lambda: np.linalg.qr(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.qr(A, mode="economic", check_finite=False)))
    return out


def refs_logdet(case, batched):
    (A,) = case.diff

    def numpy_chol():
        return 2.0 * np.sum(np.log(np.diagonal(np.linalg.cholesky(A), axis1=-2, axis2=-1)), axis=-1)

    def scipy_chol():
        L = scipy.linalg.cholesky(A, lower=True, check_finite=False)
        return 2.0 * np.sum(np.log(np.diagonal(L)))

    out = [("numpy:cholesky", numpy_chol), ("numpy:slogdet", lambda: np.linalg.slogdet(A))]
    if not batched:
        out.append(("scipy:cholesky", scipy_chol))
    return out


# --- linalgad, through its public API only ----------------------------------------------
# check_finite=False as every reference call (SciPy's default scan is not timed there;
# no peer scans): the scan costs one pass over the input (~9 µs at n = 256).
def linalgad_losses(lad, la):
    def inv(A, c):
        return lad.sum(la.inv(A, check_finite=False) * c["W"])

    def det(A, c):
        return lad.sum(la.det(A, check_finite=False) * c["w"])

    def slogdet(A, c):
        return lad.sum(la.slogdet(A, check_finite=False)[1] * c["w"])

    def cholesky(A, c):  # lower (NumPy's default)
        return lad.sum(la.cholesky(A, check_finite=False) * c["W"])

    def cho_solve(C, b, c):
        return lad.sum(la.cho_solve((C, True), b, check_finite=False) * c["W"])

    def solve_triangular(T, b, c):
        return lad.sum(la.solve_triangular(T, b, lower=True, check_finite=False) * c["W"])

    def lu_factor(A, c):
        return lad.sum(la.lu_factor(A, check_finite=False)[0] * c["W"])

    def lu_solve(LU, b, c):
        return lad.sum(la.lu_solve((LU, c["piv"]), b, check_finite=False) * c["W"])

    def qr(A, c):
        Q, R = la.qr(A, check_finite=False)
        return lad.sum(Q * c["WQ"]) + lad.sum(R * c["WR"])

    def logdet(A, c):
        return lad.sum(la.logdet(A, lower=True, check_finite=False) * c["w"])

    return dict(inv=inv, det=det, slogdet=slogdet, cholesky=cholesky, cho_solve=cho_solve,
                solve_triangular=solve_triangular, lu_factor=lu_factor, lu_solve=lu_solve,
                qr=qr, logdet=logdet)


LINALGAD_MISSING = None


def load_linalgad():
    """(lad, la) or None, with the reason in LINALGAD_MISSING."""
    global LINALGAD_MISSING
    try:
        import linalgad as lad
        from linalgad import linalg as la
        lad.value_and_grad, lad.sum  # noqa: B018  (fail here if not there yet)
        return lad, la
    except Exception as e:  # not importable yet, or the API is not complete
        LINALGAD_MISSING = f"{type(e).__name__}: {e}"
        return None


def linalgad_lacks(rule):
    """None when linalgad has the rule's functions; else the reason."""
    loaded = load_linalgad()
    if loaded is None:
        return f"linalgad not importable: {LINALGAD_MISSING}"
    missing = [f for f in RULES[rule].la_functions if not hasattr(loaded[1], f)]
    return f"la.{', la.'.join(missing)} not implemented yet" if missing else None


def linalgad_make(rule, diff, consts, jit=False):
    lad, la = load_linalgad()
    loss = linalgad_losses(lad, la)[rule]

    def f(*d):
        return loss(*d, consts)

    vg = lad.value_and_grad(f, argnums=tuple(range(len(diff))))
    if jit:
        vg = lad.jit(vg)

    def run():
        return vg(*diff)

    def unpack(out):
        val, grads = out
        return float(np.asarray(val)), [np.asarray(g) for g in grads]

    return run, unpack


# --- the rules ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rule:
    make_case: Callable      # (rng, batch, n) -> Case
    exact: Callable          # (*diff, consts) -> (value, [grads]) in linalgad's convention
    refs: Callable           # (case, batched) -> [(label, forward fn)]
    la_functions: tuple      # what linalgad must have
    # Peers that return a different but equivalent cotangent: (description, converter on
    # the first gradient). Tried only when the raw gradient disagrees.
    convention: tuple = None
    # The output depends on conventions (pivots, signs): a value that differs means the
    # libraries computed different factorizations, so gradients are not comparable.
    convention_dependent_output: bool = False


def _sym_to_tril(g):
    """A symmetric gradient (of a rule that symmetrizes its input) -> the read triangle's."""
    if not np.allclose(g, mT(g), rtol=1e-10, atol=1e-12 * max(1.0, np.max(np.abs(g)))):
        return g * np.nan
    return tril_of_sym(g)


SYM = ("symmetric gradient, compared as 2·tril(Ḡ,−1)+diag(Ḡ)", _sym_to_tril)
UNPROJECTED = ("gradient w.r.t. the factor not projected onto the triangle it reads; "
               "compared on that triangle", np.tril)

RULES = {
    "inv": Rule(case_inv, exact_inv, refs_inv, ("inv",)),
    "det": Rule(case_det, exact_det, refs_det, ("det",)),
    "slogdet": Rule(case_slogdet, exact_slogdet, refs_slogdet, ("slogdet",)),
    "cholesky": Rule(case_cholesky, exact_cholesky, refs_cholesky, ("cholesky",), SYM),
    "cho_solve": Rule(case_cho_solve, exact_cho_solve, refs_cho_solve, ("cho_solve",),
                      UNPROJECTED),
    "solve_triangular": Rule(case_solve_triangular, exact_solve_triangular,
                             refs_solve_triangular, ("solve_triangular",), UNPROJECTED),
    "lu_factor": Rule(case_lu_factor, exact_lu_factor, refs_lu_factor, ("lu_factor",),
                      convention_dependent_output=True),
    "lu_solve": Rule(case_lu_solve, exact_lu_solve, refs_lu_solve, ("lu_solve",)),
    "qr": Rule(case_qr, exact_qr, refs_qr, ("qr",), convention_dependent_output=True),
    "logdet": Rule(case_logdet, exact_logdet, refs_logdet, ("logdet",), SYM),
}


# --- checking ----------------------------------------------------------------------------
def check(rule, value, grads, want_value, want_grads):
    """-> (status, rel_err, note): status 'ok', 'conv' (ok after a convention change),
    'n/c' (different factorization: not comparable) or 'wrong'."""
    r = RULES[rule]
    value_ok = np.isclose(value, want_value, rtol=1e-8, atol=1e-10 * max(1.0, abs(want_value)))
    if not value_ok and r.convention_dependent_output:
        return "n/c", np.nan, (f"value {value:.6g} vs {want_value:.6g}: a different "
                               "factorization (pivots/signs), gradients not comparable")
    if common.grads_agree(grads, want_grads, RTOL):
        status, err, note = "ok", common.rel_err(grads, want_grads), None
    elif r.convention is not None and common.grads_agree(
            [r.convention[1](grads[0])] + list(grads[1:]), want_grads, RTOL):
        conv = [r.convention[1](grads[0])] + list(grads[1:])
        status, err, note = "conv", common.rel_err(conv, want_grads), r.convention[0]
    else:
        return "wrong", common.rel_err(grads, want_grads), "gradient disagrees with the closed form"
    if not value_ok:
        return "wrong", err, f"value {value:.10g} vs {want_value:.10g}"
    return status, err, note


# --- main --------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: shapes {','.join(sorted(QUICK_SHAPES))}, 3 rounds of >= 5 ms")
    ap.add_argument("--rules", default=",".join(RULES),
                    help=f"comma-separated subset of {','.join(RULES)} (default: all)")
    ap.add_argument("--peers", default=",".join(LIBS),
                    help=f"comma-separated subset of {','.join(LIBS)} (default: all)")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated subset of shape labels, e.g. 64x64,10000x4x4")
    ap.add_argument("--out", help="also write the markdown tables to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    args = ap.parse_args(argv)

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if set(rules) - set(RULES):
        ap.error(f"unknown rules {sorted(set(rules) - set(RULES))}; choose from {','.join(RULES)}")
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(wanted) - set(LIBS):
        ap.error(f"unknown peers {sorted(set(wanted) - set(LIBS))}; choose from {','.join(LIBS)}")
    installed = pf.available([p for p in pf.PEER_NAMES if p in wanted])
    libs = [name for name in LIBS if name in wanted and (name.startswith("linalgad")
                                                          or name in installed)]

    shapes = SHAPES
    if args.shapes:
        keep = set(args.shapes.split(","))
        shapes = [s for s in common.SHAPES if s[0] in keep]
    elif args.quick:
        shapes = [s for s in shapes if s[0] in QUICK_SHAPES]
    rounds, min_time = (3, 0.005) if args.quick else (ROUNDS, 0.02)
    info = common.machine_info()  # now: the checkout and date the run started with

    rows, abs_rows = [], []
    notes = {}                       # (rule, note text) -> {library: [shapes]}
    agreement = {}                   # (rule, lib) -> [(shape, status, err)]
    noisy = []                       # cells whose rounds spread by more than NOISY
    for rule in rules:
        r = RULES[rule]
        for label, batch, n in shapes:
            # Inputs depend only on (rule, shape): selecting rules or shapes changes nothing.
            rng = np.random.default_rng([common.SEED, list(RULES).index(rule),
                                         [s[0] for s in common.SHAPES].index(label)])
            case = r.make_case(rng, batch, n)
            want_value, want_grads = r.exact(*case.diff, case.consts)
            refs = dict(r.refs(case, bool(batch)))
            cells, abs_cells, ratios = {}, {}, {}
            runs, checked, held = {}, {}, []   # held: every library's gradients stay alive
            for name in libs:
                why = linalgad_lacks(rule) if name.startswith("linalgad") else \
                    pf.lacks(name, rule, bool(batch))
                if why is not None:
                    cells[name] = abs_cells[name] = "n/a" if name.startswith("linalgad") else "—"
                    notes.setdefault((rule, why), {}).setdefault(name, []).append(label)
                    continue
                try:
                    run, unpack = (linalgad_make(rule, case.diff, case.consts,
                                                 jit=name == "linalgad-jit")
                                   if name.startswith("linalgad") else
                                   pf.make(name, rule, case.diff, case.consts))
                    value, grads = unpack(run())
                    held.append(grads)
                    checked[name] = check(rule, value, grads, want_value, want_grads)
                    runs[name] = run
                except Exception as e:
                    cells[name] = abs_cells[name] = "error"
                    err_text = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                    notes.setdefault((rule, err_text), {}).setdefault(name, []).append(label)
                    if args.verbose:
                        traceback.print_exc()
            ref_name, ref, timed = common.time_cell(refs, runs, rounds, min_time)
            print(f"{rule:>16} {label:>11} {'ref':>9}: {ref} ({ref_name})", file=sys.stderr,
                  flush=True)
            if ref.spread > NOISY:
                noisy.append(f"{rule} {label} ref {ref.spread:.0%}")
            for name in runs:
                status, err, note = checked[name]
                t = timed[name]
                agreement.setdefault((rule, name), []).append((label, status, err))
                if note:
                    notes.setdefault((rule, note), {}).setdefault(name, []).append(label)
                ratios[name] = t.per_call / ref.per_call
                mark = {"ok": "", "conv": "", "n/c": " (n/c)", "wrong": " ✗"}[status]
                cells[name] = f"{ratios[name]:.2f}{mark}"
                abs_cells[name] = common.fmt_time(t.per_call)
                if t.spread > NOISY:
                    noisy.append(f"{rule} {label} {name} {t.spread:.0%}")
                print(f"{rule:>16} {label:>11} {name:>9}: {t} [{status}, err {err:.1e}]",
                      file=sys.stderr, flush=True)
            del held
            peer_ratios = {k: v for k, v in ratios.items() if k in pf.PEER_NAMES}
            best = f"**{min(peer_ratios.values()):.2f}**" if peer_ratios else "—"
            rows.append([rule, label, f"{common.fmt_time(ref.per_call)} ({ref_name})"]
                        + [cells.get(name, "—") for name in LIBS] + [best])
            abs_rows.append([rule, label, common.fmt_time(ref.per_call)]
                            + [abs_cells.get(name, "—") for name in LIBS])

    for name in pf.PEER_NAMES:
        if name in wanted and name not in installed:
            notes.setdefault((None, "not installed"), {}).setdefault(name, [])

    agree_rows = common.agreement_rows(rules, LIBS, agreement)

    mode = " (QUICK smoke run: 3 rounds of >= 5 ms; not for reporting)" if args.quick else ""
    all_shapes = [s[0] for s in shapes]
    note_lines = common.note_lines(notes, all_shapes)
    if noisy:
        note_lines.append(f"- rounds spread (median−min)/min above {NOISY:.0%} "
                          "(the machine was busy; the minimum is kept): " + "; ".join(noisy))
    text = "\n".join([
        f"# Factorization rules: value+grad time / forward-only reference time{mode}",
        "",
        "Loss per rule: a fixed random weighted sum of the outputs (inv: sum(W·inv(A)); "
        "det, slogdet, logdet: sum(w·out) over the stack; cholesky: sum(W·L), lower; "
        "cho_solve, solve_triangular, lu_solve: sum(W·x), b and W n×8; lu_factor: sum(W·lu) "
        "of the packed factor; qr (reduced): sum(WQ·Q) + sum(WR·R)); gradient w.r.t. every "
        "matrix input (cho_solve: C and b; lu_solve: lu and b; the others: A). float64; "
        "general A with condition number ≤ 3 (det: scaled to |det A| = 1); SPD A with "
        "eigenvalues in [1, 3] for cholesky, logdet, cho_solve (C = its lower Cholesky "
        "factor); solve_triangular: lower T with diagonal in [1, 2] and off-diagonal "
        "entries in (−1/n, 1/n). Peers compute logdet as 2·Σ log diag(cholesky(A)) (none has "
        "a PD logdet rule). Reference: the fastest NumPy/SciPy forward of the same operation "
        "(check_finite=False, and linalgad is called with check_finite=False too); for stacks where NumPy lacks the operation, SciPy's batching "
        "(a Python loop) or a labelled NumPy proxy doing at least the same factorization work. "
        "Every library gets the same C-ordered inputs (converted once to its own array type); "
        "SciPy's cho_solve and lu_solve are also timed with the factor in Fortran order "
        "(converted once), since their f2py wrappers otherwise copy it on every call "
        "(7× the potrs time at n = 1024) — the faster is the reference. "
        f"Minimum over {ROUNDS} interleaved rounds after warm-up (each round times the "
        "references and every library once, in inner loops of >= 20 ms, so a burst of load "
        "slows all of a cell's entries alike), one thread, one pinned core, all in one run.",
        "",
        *info,
        "",
        "Marks: ✗ value or gradient disagrees with the closed form (rtol 1e-6); "
        "(n/c) the library computed a different factorization (pivots, signs), so its "
        "gradient is not comparable; — the peer lacks the rule (see the notes); "
        "n/a linalgad does not have the function yet.",
        "",
        common.markdown_table(["rule", "shape", "fwd ref"] + list(LIBS) + ["best peer"], rows),
        "",
        "Gradient agreement with the closed form (computed here with NumPy from the formulas "
        "of docs/derivations/): worst max|Δ|/max|ḡ| over the shapes; † after a convention "
        "change (see the notes):",
        "",
        common.markdown_table(["rule"] + list(LIBS), agree_rows),
        "",
        "Absolute value+grad time per call:",
        "",
        common.markdown_table(["rule", "shape", "fwd ref"] + list(LIBS), abs_rows),
        *([""] + note_lines if note_lines else []),
    ])
    common.emit(text, args.out)


if __name__ == "__main__":
    main()
