"""Spectral rules (issue 4): value+gradient cost of linalgad and its peers, as a ratio to
NumPy/SciPy's forward.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_spectral.py [--quick] \
        [--rules eigh,svd] [--peers ...] [--shapes 64x64,10000x4x4] [--out F] [-v]

One gauge-invariant loss per rule, touching every output (c, g, W fixed random weights;
c complex for eig and eigvals), its gradient taken w.r.t. A:

    eigh      sum(c * w) + sum(W * (V diag(g) Vᵀ))     A symmetric, spread spectrum
    eigvalsh  sum(c * w)                               A symmetric, spread spectrum
    svd       sum(c * s) + sum(W * (U diag(g) Vh))     thin; A square, spread singular values
    svdvals   sum(c * s)
    eig       Re sum(c * w) + sum(W * |V|²)            A real, well separated eigenvalues
    eigvals   Re sum(c * w)

Each cell is (value+grad time) / (forward-only reference time), the reference being the
fastest NumPy/SciPy forward of the same operation on the same inputs; all measured in this
one run, on one pinned core with one thread. Every library's value and gradient are
checked once, in float64, against a closed form computed here with NumPy (written out
below); a disagreement is marked in the table.

eigh and eigvalsh read the lower triangle of A (linalgad, NumPy, torch, autograd): the
closed form is the cotangent of that triangle, tril(Ḡ + Ḡᵀ) − diag(Ḡ) with Ḡ = V W̃ Vᵀ,
zero above the diagonal. A peer that returns a full (symmetric, or unprojected) gradient Ḡ
is compared after the same projection (JAX, torch), and the notes say so.

eig and eigvals weigh the i-th eigenvalue and eigenvector column, so the loss depends on
the order the library's LAPACK returns them in (geev's order differs with and without
eigenvectors, and between MKL and OpenBLAS): each library is checked in its own order.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import peers_spectral as ps  # noqa: E402

LIBS = ("linalgad", "linalgad-jit") + ps.PEER_NAMES   # -jit: lad.jit(value_and_grad(...))
SHAPES = [s for s in common.SHAPES if s[0] != "16x16"]  # n = 64, 256, 1024 and the stacks
QUICK_SHAPES = {"64x64", "10000x4x4"}
RTOL = 1e-6  # gradient agreement, float64
NOISY = 0.5  # a cell whose median round sits this far above its best is listed under the table
ROUNDS = 7   # interleaved rounds per cell (--quick: 3)
# --slow-repeats applies to the cells whose first reference forward call takes this long.
SLOW_REF = 0.3


# --- small NumPy helpers (stacked: (..., n, n)) -------------------------------------------
def mT(x):
    return np.swapaxes(x, -1, -2)


def mH(x):
    return np.conj(mT(x))


def diag_embed(d):
    return d[..., :, None] * np.eye(d.shape[-1])


def diagonal(X):
    return np.diagonal(X, axis1=-2, axis2=-1)


def tril_projection(G):
    """The cotangent of the lower triangle (what a rule that reads it returns), from a
    gradient G valid for symmetric perturbations: tril(G + Gᵀ) − diag(G). For a G that is
    already lower triangular this is G itself."""
    return np.tril(G + mT(G)) - diag_embed(diagonal(G))


def off_diagonal_inverse(d):
    """E_ij = 1/(d_j − d_i) for i ≠ j, 0 on the diagonal (stacked over d's leading dims)."""
    diff = d[..., None, :] - d[..., :, None]
    n = d.shape[-1]
    diff = np.where(np.eye(n, dtype=bool), 1.0, diff)
    return np.where(np.eye(n, dtype=bool), 0.0, 1.0 / diff)


# --- inputs ------------------------------------------------------------------------------
def orthogonal(rng, batch, n):
    Q, R = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    return Q * np.sign(diagonal(R))[..., None, :]


def spread(rng, batch, n, lo, hi):
    """n values evenly spaced over [lo, hi] (spacing h), each moved by at most h/4 at random
    and shuffled: neighbours stay >= h/2 apart."""
    h = (hi - lo) / n
    vals = lo + h * (np.arange(n) + 0.5 + rng.uniform(-0.25, 0.25, size=batch + (n,)))
    return rng.permuted(vals, axis=-1)


def symmetric(rng, batch, n):
    """V diag(w) Vᵀ, w evenly spread over [-1, 1] (gaps >= 1/n), exactly symmetric."""
    V = orthogonal(rng, batch, n)
    w = spread(rng, batch, n, -1.0, 1.0)
    A = (V * w[..., None, :]) @ mT(V)
    return np.ascontiguousarray(0.5 * (A + mT(A)))


def spread_singular(rng, batch, n):
    """U diag(s) Vᵀ, s evenly spread over [1, 3] (gaps >= 1/n; condition number <= 3)."""
    U, V = orthogonal(rng, batch, n), orthogonal(rng, batch, n)
    s = spread(rng, batch, n, 1.0, 3.0)
    return np.ascontiguousarray((U * s[..., None, :]) @ mT(V))


def separated_eig(rng, batch, n):
    """Real X B X⁻¹ with X of condition number <= 3 and B block diagonal: r real eigenvalues
    spread over [-1, 1] and p complex-conjugate pairs a ± ib, one in each of p random cells
    of a q x 2q grid of square cells of side 1/q over [-1, 1] x (0, 1] (jittered by at most
    a quarter cell). About 3/4 of the eigenvalues are complex; any two are at least
    ~1/(4 max(q, r/2)) apart, and the eigenvectors are well conditioned (cond V <= ~3)."""
    p = (3 * n // 4) // 2
    r = n - 2 * p
    q = int(np.ceil(np.sqrt(p / 2))) if p else 1
    B = np.zeros(batch + (n, n))
    re = spread(rng, batch, r, -1.0, 1.0)
    idx = np.arange(r)
    B[..., idx, idx] = re
    if p:
        cells = np.argsort(rng.random(batch + (2 * q * q,)), axis=-1)[..., :p]
        col, row = cells % (2 * q), cells // (2 * q)
        a = -1.0 + (col + 0.5 + rng.uniform(-0.25, 0.25, size=cells.shape)) / q
        b = (row + 0.5 + rng.uniform(-0.25, 0.25, size=cells.shape)) / q
        i = r + 2 * np.arange(p)
        B[..., i, i] = a
        B[..., i + 1, i + 1] = a
        B[..., i, i + 1] = b
        B[..., i + 1, i] = -b
    X = common.well_conditioned(rng, batch, n)
    A = mT(np.linalg.solve(mT(X), mT(X @ B)))  # X B X⁻¹
    return np.ascontiguousarray(A)


@dataclasses.dataclass
class Case:
    A: np.ndarray       # the input the gradient is taken w.r.t. (float64)
    consts: dict        # weights, passed to every library the same way


def _weights(rng, batch, n, complex_c=False):
    c = rng.standard_normal(batch + (n,))
    if complex_c:
        c = c + 1j * rng.standard_normal(batch + (n,))
    return {"c": c, "g": rng.standard_normal(batch + (1, n)),
            "W": rng.standard_normal(batch + (n, n))}


def case_eigh(rng, batch, n):
    return Case(symmetric(rng, batch, n), _weights(rng, batch, n))


def case_svd(rng, batch, n):
    return Case(spread_singular(rng, batch, n), _weights(rng, batch, n))


def case_eig(rng, batch, n):
    return Case(separated_eig(rng, batch, n), _weights(rng, batch, n, complex_c=True))


# --- closed forms: (value, [A_bar]) in linalgad's convention ------------------------------
# eigh, eigvalsh: the cotangent of the lower triangle read, zero above the diagonal.
def exact_eigh(A, c):
    """V_bar = (W + Wᵀ) V diag(g); K = Vᵀ V_bar; F_ij = 1/(w_j − w_i);
    Ḡ = V (diag(c) + F∘(K − Kᵀ)/2) Vᵀ; A_bar = tril(Ḡ + Ḡᵀ) − diag(Ḡ)."""
    w, V = np.linalg.eigh(A)
    Wt, g = c["W"], c["g"]
    value = np.sum(c["c"] * w) + np.sum(Wt * ((V * g) @ mT(V)))
    K = mT(V) @ ((Wt + mT(Wt)) @ V * g)
    inner = diag_embed(c["c"]) + off_diagonal_inverse(w) * 0.5 * (K - mT(K))
    return value, [tril_projection(V @ inner @ mT(V))]


def exact_funmh(A, c):
    """F = V diag(e^w) Vᵀ (= expm(A)); Ḡ = V (Φ ∘ (Vᵀ W V)) Vᵀ with the divided differences
    Φ_ij = (e^{w_i} − e^{w_j})/(w_i − w_j) (e^{w_i} on the diagonal: the spectrum is
    spread, no ties); A_bar = tril(Ḡ + Ḡᵀ) − diag(Ḡ)."""
    w, V = np.linalg.eigh(A)
    e = np.exp(w)
    value = np.sum(c["W"] * ((V * e[..., None, :]) @ mT(V)))
    gap = w[..., :, None] - w[..., None, :]
    same = gap == 0
    phi = np.where(same, e[..., :, None], (e[..., :, None] - e[..., None, :])
                   / np.where(same, 1.0, gap))
    return value, [tril_projection(V @ (phi * (mT(V) @ c["W"] @ V)) @ mT(V))]


def exact_eigvalsh(A, c):
    w, V = np.linalg.eigh(A)
    return np.sum(c["c"] * w), [tril_projection((V * c["c"][..., None, :]) @ mT(V))]


def exact_svd(A, c):
    """Townsend's form for a square A (independent of linalgad's Ω± split):
    Ū = W V diag(g), V̄ = Wᵀ U diag(g), J = UᵀŪ, K = VᵀV̄, F_ij = 1/(s_j² − s_i²),
    A_bar = U [(F∘(J − Jᵀ)) S + diag(c) + S (F∘(K − Kᵀ))] Vᵀ."""
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    V = mT(Vh)
    Wt, g = c["W"], c["g"]
    value = np.sum(c["c"] * s) + np.sum(Wt * ((U * g) @ Vh))
    J = mT(U) @ (Wt @ V * g)
    K = mT(V) @ (mT(Wt) @ U * g)
    F = off_diagonal_inverse(s * s)
    inner = ((F * (J - mT(J))) * s[..., None, :] + diag_embed(c["c"])
             + s[..., :, None] * (F * (K - mT(K))))
    return value, [U @ inner @ Vh]


def exact_svdvals(A, c):
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    return np.sum(c["c"] * s), [(U * c["c"][..., None, :]) @ Vh]


def exact_generalized_funm(A, c):
    """F = U diag(tanh s) Vᵀ (A square, distinct s); Ā = U (Φ⁺∘sym(P) + Φ⁻∘skew(P)) Vᵀ with
    P = Uᵀ W V, Φ⁺ᵢⱼ = (fᵢ − fⱼ)/(sᵢ − sⱼ) (f'(sᵢ) on the diagonal), Φ⁻ᵢⱼ = (fᵢ + fⱼ)/(sᵢ + sⱼ)."""
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    f, df = np.tanh(s), 1 - np.tanh(s) ** 2
    value = np.sum(c["W"] * ((U * f[..., None, :]) @ Vh))
    gap = s[..., :, None] - s[..., None, :]
    same = gap == 0
    plus = np.where(same, df[..., :, None], (f[..., :, None] - f[..., None, :])
                    / np.where(same, 1.0, gap))
    minus = (f[..., :, None] + f[..., None, :]) / (s[..., :, None] + s[..., None, :])
    P = mT(U) @ c["W"] @ mT(Vh)
    X = plus * 0.5 * (P + mT(P)) + minus * 0.5 * (P - mT(P))
    return value, [U @ X @ Vh]


def match_order(w_ref, w_lib):
    """perm with w_ref[..., perm] ≈ w_lib (per matrix; nearest neighbour, eigenvalues well
    separated); None when w_lib is not a permutation of w_ref."""
    w_lib = np.asarray(w_lib).astype(complex)
    if w_lib.shape != w_ref.shape:
        return None
    perm = np.argmin(np.abs(w_lib[..., :, None] - w_ref[..., None, :]), axis=-1)
    if not np.all(np.sort(perm, axis=-1) == np.arange(w_ref.shape[-1])):
        return None
    if not np.allclose(np.take_along_axis(w_ref, perm, axis=-1), w_lib, rtol=1e-8, atol=1e-10):
        return None
    return perm


def _eig_in_order(A, order):
    w, V = np.linalg.eig(A)
    w, V = w.astype(complex), V.astype(complex)
    if order is not None:
        perm = match_order(w, order)
        if perm is None:
            return None
        w = np.take_along_axis(w, perm, axis=-1)
        V = np.take_along_axis(V, perm[..., None, :], axis=-1)
    return w, V


def exact_eig(A, c, order=None):
    """In the order of the eigenvalues `order` (NumPy's eig order when None).
    w̄ = conj(c), V̄ = 2 W∘V; K = Vᴴ V̄, Y = K − VᴴV diag(Re diag K), E_ij = 1/(w_j − w_i),
    A_bar = Re V⁻ᴴ (diag(w̄) + conj(E)∘Y) Vᴴ."""
    wV = _eig_in_order(A, order)
    if wV is None:
        return None
    w, V = wV
    Wt = c["W"]
    value = np.real(np.sum(c["c"] * w)) + np.sum(Wt * np.abs(V) ** 2)
    K = mH(V) @ (2.0 * Wt * V)
    Y = K - (mH(V) @ V) * np.real(diagonal(K))[..., None, :]
    inner = diag_embed(np.conj(c["c"])) + np.conj(off_diagonal_inverse(w)) * Y
    return value, [np.real(np.linalg.solve(mH(V), inner @ mH(V)))]


def exact_eigvals(A, c, order=None):
    """A_bar = Re V⁻ᴴ diag(conj c) Vᴴ."""
    wV = _eig_in_order(A, order)
    if wV is None:
        return None
    w, V = wV
    value = np.real(np.sum(c["c"] * w))
    return value, [np.real(np.linalg.solve(mH(V), np.conj(c["c"])[..., :, None] * mH(V)))]


# --- forward-only references: [(label, fn)] for this case; the fastest is the reference -----
def refs_eigh(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.eigh(A))]
    if not batched:
        out.append(("scipy evd", lambda: scipy.linalg.eigh(A, driver="evd", check_finite=False)))
    return out


def refs_funmh(case, batched):
    """e^A for symmetric A: the eigendecomposition and one product (NumPy), or SciPy's
    expm (Padé, for one matrix or a stack); the faster is the reference."""
    A = case.A

    def by_eigh():
        w, V = np.linalg.eigh(A)
        return (V * np.exp(w)[..., None, :]) @ mT(V)
    return [("numpy eigh", by_eigh), ("scipy expm", lambda: scipy.linalg.expm(A))]


def refs_eigvalsh(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.eigvalsh(A))]
    if not batched:
        out.append(("scipy evd", lambda: scipy.linalg.eigh(A, eigvals_only=True, driver="evd",
                                                           check_finite=False)))
    return out


def refs_svd(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.svd(A, full_matrices=False))]
    if not batched:
        out.append(("scipy gesdd", lambda: scipy.linalg.svd(
            A, full_matrices=False, lapack_driver="gesdd", check_finite=False)))
    return out


def refs_svdvals(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.svd(A, compute_uv=False))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.svdvals(A, check_finite=False)))
    return out


def refs_generalized_funm(case, batched):
    """U tanh(Σ) Vᵀ: NumPy's thin SVD and one product (SciPy's gesdd for one matrix)."""
    A = case.A

    def by(svd):
        def run():
            U, s, Vh = svd(A)
            return (U * np.tanh(s)[..., None, :]) @ Vh
        return run
    out = [("numpy svd", by(lambda a: np.linalg.svd(a, full_matrices=False)))]
    if not batched:
        out.append(("scipy gesdd", by(lambda a: scipy.linalg.svd(
            a, full_matrices=False, check_finite=False))))
    return out


def refs_eig(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.eig(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.eig(A, check_finite=False)))
    return out


def refs_eigvals(case, batched):
    A = case.A
    out = [("numpy", lambda: np.linalg.eigvals(A))]
    if not batched:
        out.append(("scipy", lambda: scipy.linalg.eigvals(A, check_finite=False)))
    return out


# --- linalgad, through its public API only ----------------------------------------------
def linalgad_losses(lad, la):
    def eigh(A, c):
        w, V = la.eigh(A, check_finite=False)
        return lad.sum(c["c"] * w) + lad.sum(c["W"] * ((V * c["g"]) @ lad.mT(V)))

    def eigvalsh(A, c):
        return lad.sum(c["c"] * la.eigvalsh(A, check_finite=False))

    def funmh(A, c):
        return lad.sum(c["W"] * la.funmh(A, np.exp, check_finite=False))

    def generalized_funm(A, c):
        return lad.sum(c["W"] * la.generalized_funm(A, np.tanh, check_finite=False))

    def svd(A, c):
        U, s, Vh = la.svd(A, full_matrices=False, check_finite=False)
        return lad.sum(c["c"] * s) + lad.sum(c["W"] * ((U * c["g"]) @ Vh))

    def svdvals(A, c):
        return lad.sum(c["c"] * la.svdvals(A, check_finite=False))

    def eig(A, c):
        w, V = la.eig(A, check_finite=False)
        return (lad.real(lad.sum(c["c"] * w))
                + lad.sum(c["W"] * (lad.real(V) ** 2 + lad.imag(V) ** 2)))

    def eigvals(A, c):
        return lad.real(lad.sum(c["c"] * la.eigvals(A, check_finite=False)))

    return dict(eigh=eigh, eigvalsh=eigvalsh, svd=svd, svdvals=svdvals, eig=eig,
                eigvals=eigvals, funmh=funmh, generalized_funm=generalized_funm)


LINALGAD_MISSING = None


def load_linalgad():
    """(lad, la) or None, with the reason in LINALGAD_MISSING."""
    global LINALGAD_MISSING
    try:
        import linalgad as lad
        from linalgad import linalg as la
        lad.value_and_grad, lad.sum, lad.mT, lad.real, lad.imag  # noqa: B018
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


def linalgad_make(rule, A, consts, jit=False):
    lad, la = load_linalgad()
    loss = linalgad_losses(lad, la)[rule]

    def f(A):
        return loss(A, consts)

    vg = lad.value_and_grad(f)
    if jit:
        vg = lad.jit(vg)

    def run():
        return vg(A)

    def unpack(out):
        val, grad = out
        return float(np.asarray(val)), [np.asarray(grad)]

    return run, unpack


def linalgad_probes(A):
    """linalgad's eigenvalues in its eig and eigvals orders (forward only, untimed)."""
    _, la = load_linalgad()
    out = []
    for fn in (lambda: la.eig(A)[0], lambda: la.eigvals(A)):
        try:
            out.append(np.asarray(fn()))
        except Exception:  # noqa: BLE001  (one of them missing: the other still counts)
            pass
    return out


def probes(name, A):
    return linalgad_probes(A) if name.startswith("linalgad") else ps.eigenvalue_probes(name, A)


# --- the rules ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rule:
    make_case: Callable      # (rng, batch, n) -> Case
    exact: Callable          # (A, consts[, order]) -> (value, [A_bar]) in linalgad's convention
    refs: Callable           # (case, batched) -> [(label, forward fn)]
    la_functions: tuple      # what linalgad must have
    # Libraries that return a different but equivalent cotangent: (description, converter).
    # Tried only when the raw gradient disagrees.
    convention: tuple = None
    # The loss depends on the eigenvalue order (eig, eigvals): checked in each library's own.
    order_dependent: bool = False


TRIL = ("full gradient Ḡ (symmetric or unprojected) for the one triangle eigh reads; "
        "compared after projection onto the lower triangle, tril(Ḡ+Ḡᵀ)−diag(Ḡ)", tril_projection)

RULES = {
    "eigh": Rule(case_eigh, exact_eigh, refs_eigh, ("eigh",), TRIL),
    "eigvalsh": Rule(case_eigh, exact_eigvalsh, refs_eigvalsh, ("eigvalsh",), TRIL),
    "svd": Rule(case_svd, exact_svd, refs_svd, ("svd",)),
    "svdvals": Rule(case_svd, exact_svdvals, refs_svdvals, ("svdvals",)),
    "eig": Rule(case_eig, exact_eig, refs_eig, ("eig",), order_dependent=True),
    "eigvals": Rule(case_eig, exact_eigvals, refs_eigvals, ("eigvals",), order_dependent=True),
    "funmh": Rule(case_eigh, exact_funmh, refs_funmh, ("funmh",), TRIL),
    "generalized_funm": Rule(case_svd, exact_generalized_funm, refs_generalized_funm,
                             ("generalized_funm",)),
}


INPUT_KINDS = [case_eigh, case_svd, case_eig]  # seeds: rules sharing inputs share their seed


# --- checking ----------------------------------------------------------------------------
def value_agrees(value, want_value):
    return bool(np.isclose(value, want_value, rtol=1e-8, atol=1e-10 * max(1.0, abs(want_value))))


def expected(rule, case, name, value):
    """(want_value, want_grads, note) for library `name`: for order-dependent rules, the
    closed form in the eigenvalue order whose value matches the library's; None if none."""
    r = RULES[rule]
    if not r.order_dependent:
        want_value, want_grads = r.exact(case.A, case.consts)
        return want_value, want_grads, None
    first = None
    candidates = [("NumPy's eig", None), ("NumPy's eigvals", np.linalg.eigvals(case.A))]
    candidates += [(f"{name}'s own", w) for w in probes(name, case.A)]
    for label, order in candidates:
        res = r.exact(case.A, case.consts, order)
        if res is None:
            continue
        first = first or res
        if value_agrees(value, res[0]):
            note = None if order is None else "checked in the library's eigenvalue order"
            return res[0], res[1], note
    return (first[0], first[1], None) if first else None


def check(rule, case, name, value, grads):
    """-> (status, rel_err, note): status 'ok', 'conv' (ok after a convention change),
    'n/c' (eigenvalue order not identified: not comparable) or 'wrong'."""
    r = RULES[rule]
    exp = expected(rule, case, name, value)
    if exp is None or (r.order_dependent and not value_agrees(value, exp[0])):
        return "n/c", np.nan, ("value matches the closed form in none of the eigenvalue "
                               "orders tried: gradient not comparable")
    want_value, want_grads, note = exp
    value_ok = value_agrees(value, want_value)
    if common.grads_agree(grads, want_grads, RTOL):
        status, err = "ok", common.rel_err(grads, want_grads)
    elif r.convention is not None and common.grads_agree(
            [r.convention[1](grads[0])] + list(grads[1:]), want_grads, RTOL):
        conv = [r.convention[1](grads[0])] + list(grads[1:])
        status, err, note = "conv", common.rel_err(conv, want_grads), r.convention[0]
    else:
        conv_err = (common.rel_err([r.convention[1](grads[0])], want_grads)
                    if r.convention is not None else np.inf)
        return "wrong", min(common.rel_err(grads, want_grads), conv_err), \
            "gradient disagrees with the closed form"
    if not value_ok:
        return "wrong", err, f"value {value:.10g} vs {want_value:.10g}"
    return status, err, note


def _is_order_note(text):
    return text == "checked in the library's eigenvalue order"


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
    ap.add_argument("--slow-repeats", type=int, default=None, metavar="R",
                    help=f"R rounds (>= 3) instead of {ROUNDS} in the cells whose "
                         f"reference forward takes >= {SLOW_REF} s (at 1024x1024: svd, eig, "
                         "eigvals); listed under the table")
    ap.add_argument("--out", help="also write the markdown tables to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    args = ap.parse_args(argv)

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if set(rules) - set(RULES):
        ap.error(f"unknown rules {sorted(set(rules) - set(RULES))}; choose from {','.join(RULES)}")
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(wanted) - set(LIBS):
        ap.error(f"unknown peers {sorted(set(wanted) - set(LIBS))}; choose from {','.join(LIBS)}")
    if args.slow_repeats is not None and args.slow_repeats < 3:
        ap.error("--slow-repeats must be >= 3")
    installed = ps.available([p for p in ps.PEER_NAMES if p in wanted])
    libs = [name for name in LIBS if name in wanted and (name.startswith("linalgad")
                                                          or name in installed)]

    shapes = SHAPES
    if args.shapes:
        keep = set(args.shapes.split(","))
        shapes = [s for s in common.SHAPES if s[0] in keep]
    elif args.quick:
        shapes = [s for s in shapes if s[0] in QUICK_SHAPES]
    info = common.machine_info()  # now: the checkout and date the run started with

    def timings(refs, runs, slow):
        """common.time_cell: every library and reference once per round; with
        --slow-repeats, fewer rounds in a slow cell."""
        rounds, min_time = (3, 0.005) if args.quick else (ROUNDS, 0.02)
        if slow and args.slow_repeats is not None:
            rounds = min(rounds, args.slow_repeats)
        return common.time_cell(refs, runs, rounds, min_time)

    rows, abs_rows = [], []
    notes = {}                       # (rule, note text) -> {library: [shapes]}
    agreement = {}                   # (rule, lib) -> [(shape, status, err)]
    noisy = []                       # cells whose rounds spread by more than NOISY
    reduced = []                     # cells timed with --slow-repeats
    for rule in rules:
        r = RULES[rule]
        for label, batch, n in shapes:
            # Inputs depend only on (rule's input kind, shape): selecting rules or shapes
            # changes nothing; eigh/eigvalsh, svd/svdvals, eig/eigvals share their inputs.
            kind = INPUT_KINDS.index(r.make_case)
            rng = np.random.default_rng([common.SEED, 100 + kind,
                                         [s[0] for s in common.SHAPES].index(label)])
            case = r.make_case(rng, batch, n)
            refs = dict(r.refs(case, bool(batch)))
            t0 = common.time.perf_counter()
            next(iter(refs.values()))()
            slow = common.time.perf_counter() - t0 >= SLOW_REF  # a slow cell (--slow-repeats)
            if slow and args.slow_repeats is not None:
                reduced.append(f"{rule} {label}")
            cells, abs_cells, ratios = {}, {}, {}
            runs, checked = {}, {}
            # `held` keeps every library's last value and gradient alive while all are
            # timed: the held arrays keep glibc from trimming the heap after each call, so
            # the temporaries of the next call do not fault in fresh pages (with nothing
            # held, linalgad's eig value+grad at 10000x4x4 took 93 ms instead of 71).
            held = []
            for name in libs:
                why = linalgad_lacks(rule) if name.startswith("linalgad") else \
                    ps.lacks(name, rule, bool(batch))
                if why is not None:
                    cells[name] = abs_cells[name] = "n/a" if name.startswith("linalgad") else "—"
                    notes.setdefault((rule, why), {}).setdefault(name, []).append(label)
                    continue
                try:
                    run, unpack = (linalgad_make(rule, case.A, case.consts,
                                                 jit=name == "linalgad-jit")
                                   if name.startswith("linalgad") else
                                   ps.make(name, rule, case.A, case.consts))
                    value, grads = unpack(run())
                    held.append(grads)
                    checked[name] = check(rule, case, name, value, grads)
                    runs[name] = run
                except Exception as e:
                    cells[name] = abs_cells[name] = "error"
                    err_text = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                    notes.setdefault((rule, err_text), {}).setdefault(name, []).append(label)
                    if args.verbose:
                        traceback.print_exc()
            ref_name, ref, timed = timings(refs, runs, slow)
            print(f"{rule:>9} {label:>11} {'ref':>9}: {ref} ({ref_name})", file=sys.stderr,
                  flush=True)
            if ref.spread > NOISY:
                noisy.append(f"{rule} {label} ref {ref.spread:.0%}")
            for name in runs:
                status, err, note = checked[name]
                t = timed[name]
                agreement.setdefault((rule, name), []).append((label, status, err))
                if note and not _is_order_note(note):
                    notes.setdefault((rule, note), {}).setdefault(name, []).append(label)
                ratios[name] = t.per_call / ref.per_call
                mark = {"ok": "", "conv": "", "n/c": " (n/c)", "wrong": " ✗"}[status]
                cells[name] = f"{ratios[name]:.2f}{mark}"
                abs_cells[name] = common.fmt_time(t.per_call)
                if t.spread > NOISY:
                    noisy.append(f"{rule} {label} {name} {t.spread:.0%}")
                print(f"{rule:>9} {label:>11} {name:>9}: {t} [{status}, err {err:.1e}]",
                      file=sys.stderr, flush=True)
            del held
            peer_ratios = {k: v for k, v in ratios.items() if k in ps.PEER_NAMES}
            best = f"**{min(peer_ratios.values()):.2f}**" if peer_ratios else "—"
            rows.append([rule, label, f"{common.fmt_time(ref.per_call)} ({ref_name})"]
                        + [cells.get(name, "—") for name in LIBS] + [best])
            abs_rows.append([rule, label, common.fmt_time(ref.per_call)]
                            + [abs_cells.get(name, "—") for name in LIBS])

    for name in ps.PEER_NAMES:
        if name in wanted and name not in installed:
            notes.setdefault((None, "not installed"), {}).setdefault(name, [])

    agree_rows = common.agreement_rows(rules, LIBS, agreement)

    mode = " (QUICK smoke run: 3 rounds of >= 5 ms; not for reporting)" if args.quick else ""
    all_shapes = [s[0] for s in shapes]
    note_lines = common.note_lines(notes, all_shapes)
    if reduced:
        note_lines.append(f"- timed with {args.slow_repeats} rounds instead of "
                          f"{ROUNDS} in the cells whose reference forward takes >= "
                          f"{SLOW_REF} s (--slow-repeats): " + "; ".join(reduced))
    if noisy:
        note_lines.append(f"- rounds spread (median−min)/min above {NOISY:.0%} "
                          "(the machine was busy; the minimum is kept): " + "; ".join(noisy))
    text = "\n".join([
        f"# Spectral rules: value+grad time / forward-only reference time{mode}",
        "",
        "Loss per rule: gauge-invariant (no dependence on the sign or phase of a vector) and "
        "touching every output, with fixed random weights c (values), g (vectors) and W: "
        "eigh: sum(c·w) + sum(W·(V diag(g) Vᵀ)); eigvalsh: sum(c·w); svd (thin, "
        "full_matrices=False): sum(c·s) + sum(W·(U diag(g) Vh)); svdvals: sum(c·s); eig: "
        "Re sum(c·w) + sum(W·|V|²); eigvals: Re sum(c·w) (c complex for eig, eigvals). "
        "Gradient w.r.t. A. float64 inputs: eigh, eigvalsh: symmetric A = V diag(w) Vᵀ, w "
        "evenly spread over [−1, 1] (neighbours ≥ 1/n apart); svd, svdvals: square "
        "A = U diag(s) Vᵀ, s evenly spread over [1, 3] (gaps ≥ 1/n, condition number ≤ 3); "
        "eig, eigvals: real A = X B X⁻¹ with cond X ≤ 3 and B block diagonal with n/4 real "
        "eigenvalues and 3n/8 complex-conjugate pairs on a jittered grid (well separated, "
        "well conditioned eigenvectors). Reference: the fastest NumPy/SciPy forward of the "
        "same operation (eigh: numpy eigh or scipy eigh driver='evd'; eigvalsh: numpy "
        "eigvalsh or scipy eigh(eigvals_only, 'evd'); svd: numpy svd (gesdd) or scipy svd "
        "gesdd, both thin; svdvals: numpy svd(compute_uv=False) or scipy svdvals; eig, "
        "eigvals: numpy or scipy eig, eigvals; check_finite=False; SciPy only for single "
        "matrices); linalgad is called with check_finite=False too. "
        "JAX's eig loss uses jax.lax.linalg.eig(enable_eigvec_derivs=True) "
        "(jnp.linalg.eig refuses eigenvector derivatives). Every library gets the same "
        "C-ordered inputs (converted once to its own array type). Minimum over "
        f"{ROUNDS} interleaved rounds after warm-up (each round times the references and "
        "every library once, in inner loops of >= 20 ms, so a burst of load slows all of "
        "a cell's entries alike), one thread, one pinned core, all in one run.",
        "",
        *info,
        "",
        "Marks: ✗ value or gradient disagrees with the closed form (rtol 1e-6); "
        "(n/c) not comparable (the eigenvalue order could not be identified); — the peer "
        "lacks the rule (see the notes); n/a linalgad does not have the function yet.",
        "",
        common.markdown_table(["rule", "shape", "fwd ref"] + list(LIBS) + ["best peer"], rows),
        "",
        "Gradient agreement with the closed form (computed here with NumPy; eigh, eigvalsh: "
        "the lower-triangle cotangent; eig, eigvals: in each library's own eigenvalue "
        "order): worst max|Δ|/max|ḡ| over the shapes; † after the triangle projection (see "
        "the notes):",
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
