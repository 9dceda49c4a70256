"""Gradients at hard spectral inputs: linalgad vs JAX, PyTorch, HIPS autograd vs finite differences.

Run from the repository root, pinned to one core (JAX can deadlock otherwise):

    taskset -c 0 .venv-bench/bin/python benchmarks/degenerate_peers.py [--out FILE] [-v]

It writes benchmarks/results_degenerate.md (or FILE): one row per case, the relative error
||g - g_fd|| / ||g_fd|| of each library's gradient against a central finite-difference
gradient of the same loss evaluated with numpy.linalg in float64 (complex128 for complex
cases), or NaN / inf, or the exception type + message; for linalgad also "(GaugeWarning)"
when its reverse pass warned. -v prints every gradient.

The cases are eigh / svd / eig at repeated eigenvalues or singular values, at the identity,
at rank-deficient matrices, and losses that depend on the eigenvector phase or on the basis
inside a degenerate eigenspace (there the "right answer" is an error or a warning).

Conventions (applied so that all columns compare the same quantity):
- Complex gradients are X_bar = dL/dRe X + i dL/dIm X (linalgad's and the FD's). Each peer's
  convention is probed at start-up on L(z) = 2 Re z + 3 Im z (expected 2 + 3i); a peer that
  returns the conjugate (JAX) is conjugated. The probe result is printed under the table.
- eigh: the function is f(T) with the matrix being the Hermitian matrix built from the lower
  triangle of T, exactly as np.linalg.eigh(T) reads it. FD runs over the strictly-lower
  entries (real and imaginary parts) and the real part of the diagonal; every other entry
  has gradient 0. linalgad gets T itself (its eigh reads the lower triangle and gives the
  other triangle zero gradient: compared as is, full matrix). The peers get the full
  Hermitian matrix H(T) and return a full-matrix gradient G; it is projected onto the lower
  triangle: g = tril(G + G^H) - Re diag(G) (this depends only on G + G^H, so it does not
  matter whether a peer returns a symmetrized or a triangular gradient).
- svd: thin (full_matrices=False) everywhere. eig: linalgad's eig is always complex; NumPy's
  eig outputs (the FD reference) are cast to complex.
"""

import os
import sys

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"                        # before NumPy / the peers are imported

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata as _md  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)  # the checkout next to this script wins

DATE = "2026-11-22"
FD_H = 1e-6
LIBS = ("linalgad", "jax", "torch", "autograd")


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def _orth(rng, n, complex_=False):
    X = rng.standard_normal((n, n))
    if complex_:
        X = X + 1j * rng.standard_normal((n, n))
    Q, R = np.linalg.qr(X)
    return Q * (np.diag(R) / np.abs(np.diag(R)))


def _sym(A):
    return (A + A.conj().T) / 2


def _inputs():
    rng = np.random.default_rng(20261122)
    d = {}
    Q3 = _orth(rng, 3)
    d["A_112"] = _sym(Q3 @ np.diag([1.0, 1.0, 2.0]) @ Q3.T)
    d["I4"] = np.eye(4)
    X = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    d["H3c"] = X + X.conj().T                     # complex Hermitian, distinct eigenvalues
    U3, V3 = _orth(rng, 3), _orth(rng, 3)
    d["A_s221"] = U3 @ np.diag([2.0, 2.0, 1.0]) @ V3.T
    d["I3"] = np.eye(3)
    d["R4_rank2"] = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 4))
    d["R53_rank2"] = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 3))
    d["C43"] = rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))
    S4 = rng.standard_normal((4, 4))
    blk = np.zeros((4, 4))
    blk[:2, :2] = [[0.5, -1.2], [1.2, 0.5]]          # eigenvalues 0.5 +- 1.2i
    blk[2, 2], blk[3, 3] = 1.5, -0.7
    d["E4_pair"] = S4 @ blk @ np.linalg.inv(S4)
    S3 = rng.standard_normal((3, 3))
    d["E3_113"] = S3 @ np.diag([1.0, 1.0, 3.0]) @ np.linalg.inv(S3)
    c = {}
    W = rng.standard_normal((3, 3))
    c["W3s"] = W + W.T                               # symmetric weights (n = 3)
    c["W3"] = rng.standard_normal((3, 3))
    c["W4"] = rng.standard_normal((4, 4))
    c["W53"] = rng.standard_normal((5, 3))
    c["W43"] = rng.standard_normal((4, 3))
    c["c4"] = rng.standard_normal(4)
    return d, c


# ---------------------------------------------------------------------------------------
# the cases: loss(m, A, c) written once against a small namespace m (one per library)
# ---------------------------------------------------------------------------------------
def _l1(m, A, c):
    w, V = m.eigh(A)
    return m.sum(m.exp(w))


def _l2(m, A, c):
    w, V = m.eigh(A)
    return m.trace((V * m.exp(w)) @ V.T)


def _l3(m, A, c):
    w, V = m.eigh(A)
    return m.sum(w ** 2) + m.sum(m.sin(w))


def _l4(m, A, c):
    w, V = m.eigh(A)
    return m.sum(c["W3s"] * ((V * m.sin(w)) @ V.T))


def _l5(m, A, c):
    w, V = m.eigh(A)
    return m.sum(c["W3"] * m.real(V * m.conj(V)))


def _l6(m, A, c):
    w, V = m.eigh(A)
    return m.sum(m.real(V))


def _l7(m, A, c):
    w, V = m.eigh(A)
    v = V[:, :1]
    return m.sum(c["W3s"] * (v @ v.T))


def _l8(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(s)


def _l9(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(c["W3"] * (U @ Vh))


def _l10(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(s ** 2)


def _l11(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(c["W4"] * ((U * s) @ Vh))


def _l12(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(s) + m.sum(c["W53"] * ((U * s) @ Vh))


def _l12b(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(s ** 2) + m.sum(c["W53"] * ((U * s) @ Vh))


def _l13(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(c["W43"] * m.real(U * m.conj(U))) + m.sum(s)


def _l14(m, A, c):
    U, s, Vh = m.svd(A)
    return m.sum(c["W3"] * ((U * s) @ Vh))


def _l15(m, A, c):
    w, V = m.eig(A)
    return m.sum(c["c4"] * m.real(w)) + m.sum(c["W4"] * m.real(V * m.conj(V)))


def _l16(m, A, c):
    w, V = m.eig(A)
    return m.real(m.sum(m.exp(w)))


# (id, kind, input key, loss fn, loss text, input text, expectation/note)
CASES = [
    ("1", "eigh", "A_112", _l1, "sum(exp(w))", "Q diag(1,1,2) Q^T, 3x3 real", "exact"),
    ("2", "eigh", "A_112", _l2, "trace(V diag(exp w) V^T)", "Q diag(1,1,2) Q^T, 3x3 real",
     "exact"),
    ("3", "eigh", "I4", _l3, "sum(w^2) + sum(sin w)", "I, 4x4", "exact"),
    ("4", "eigh", "A_112", _l4, "sum(W o V diag(sin w) V^T) = <W, sin(A)>",
     "Q diag(1,1,2) Q^T, 3x3 real (W symmetric)",
     "see note: not recoverable from (w_bar, V_bar)"),
    ("5", "eigh", "H3c", _l5, "sum(W o |V|^2)", "complex Hermitian 3x3, distinct w", "exact"),
    ("6", "eigh", "H3c", _l6, "sum(Re V) (phase-dependent)", "complex Hermitian 3x3, distinct w",
     "ill-posed: an error is the right answer"),
    ("7", "eigh", "A_112", _l7, "sum(W o v1 v1^T) (first eigenvector only)",
     "Q diag(1,1,2) Q^T, 3x3 real", "ill-posed: warning/error expected; FD meaningless"),
    ("8", "svd", "A_s221", _l8, "sum(s) (nuclear norm)", "U diag(2,2,1) V^T, 3x3 real", "exact"),
    ("9", "svd", "A_s221", _l9, "sum(W o U Vh) (polar factor)", "U diag(2,2,1) V^T, 3x3 real",
     "exact"),
    ("10", "svd", "I3", _l10, "sum(s^2)", "I, 3x3", "exact"),
    ("11", "svd", "R4_rank2", _l11, "sum(W o U diag(s) Vh) (= <W, A>)", "4x4 rank 2", "exact"),
    ("12", "svd", "R53_rank2", _l12, "sum(s) + sum(W o U diag(s) Vh)", "5x3 rank 2, thin",
     "exact per brief; but sum(s) is not differentiable at rank-deficient A (see notes)"),
    ("12b", "svd", "R53_rank2", _l12b, "sum(s^2) + sum(W o U diag(s) Vh)", "5x3 rank 2, thin",
     "exact (added: smooth variant of 12)"),
    ("13", "svd", "C43", _l13, "sum(W o |U|^2) + sum(s)", "complex 4x3, thin", "exact"),
    ("14", "svd", "A_s221", _l14, "sum(W o U diag(s) Vh) (= <W, A>)",
     "U diag(2,2,1) V^T, 3x3 real", "documented limit: GaugeWarning + wrong gradient"),
    ("15", "eig", "E4_pair", _l15, "sum(c o Re w) + sum(W o |V|^2)",
     "real 4x4, eigenvalues 0.5+-1.2i, 1.5, -0.7", "exact"),
    ("16", "eig", "E3_113", _l16, "Re sum(exp(w))", "S diag(1,1,3) S^-1, 3x3 real", "exact"),
]


# ---------------------------------------------------------------------------------------
# namespaces
# ---------------------------------------------------------------------------------------
class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _numpy_ns():
    def eig(A):
        w, V = np.linalg.eig(A)
        return w.astype(complex), V.astype(complex)
    return NS(eigh=np.linalg.eigh, svd=lambda A: np.linalg.svd(A, full_matrices=False), eig=eig,
              sum=np.sum, exp=np.exp, sin=np.sin, real=np.real, conj=np.conj, trace=np.trace,
              const=lambda x: x)


def _load_jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp
    ns = NS(eigh=jnp.linalg.eigh, svd=lambda A: jnp.linalg.svd(A, full_matrices=False),
            eig=jnp.linalg.eig, sum=jnp.sum, exp=jnp.exp, sin=jnp.sin, real=jnp.real,
            conj=jnp.conj, trace=jnp.trace, const=jnp.asarray)
    # jnp.linalg.eig refuses to differentiate (eigenvectors); the opt-in lax call, reported
    # separately under the table:
    ns.eig_optin = lambda A: tuple(jax.lax.linalg.eig(
        A, compute_left_eigenvectors=False, enable_eigvec_derivs=True))

    def grad(f, A):
        return np.asarray(jax.grad(f)(jnp.asarray(A)))

    def value(f, A):
        return float(f(jnp.asarray(A)))
    return ns, grad, value, jax.__version__


def _load_torch():
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    ns = NS(eigh=torch.linalg.eigh, svd=lambda A: torch.linalg.svd(A, full_matrices=False),
            eig=torch.linalg.eig, sum=torch.sum, exp=torch.exp, sin=torch.sin, real=torch.real,
            conj=torch.conj, trace=torch.trace, const=torch.as_tensor)

    def grad(f, A):
        t = torch.tensor(A, requires_grad=True)
        f(t).backward()
        return t.grad.detach().resolve_conj().numpy().copy()

    def value(f, A):
        with torch.no_grad():
            return float(f(torch.tensor(A)))
    return ns, grad, value, torch.__version__


def _load_autograd():
    import autograd
    import autograd.numpy as anp
    ns = NS(eigh=anp.linalg.eigh, svd=lambda A: anp.linalg.svd(A, full_matrices=False),
            eig=anp.linalg.eig, sum=anp.sum, exp=anp.exp, sin=anp.sin, real=anp.real,
            conj=anp.conj, trace=anp.trace, const=lambda x: x)

    def grad(f, A):
        return np.asarray(autograd.grad(f)(A))

    def value(f, A):
        return float(f(A))
    return ns, grad, value, _md.version("autograd")


def _load_linalgad():
    import linalgad as lad
    from linalgad import linalg as la
    from linalgad.linalg import eig, eigh, svd  # noqa: F401  (fails until the rules exist)
    ns = NS(eigh=la.eigh, svd=lambda A: la.svd(A, full_matrices=False), eig=la.eig,
            sum=lad.sum, exp=lad.exp, sin=lad.sin, real=lad.real, conj=lad.conj,
            trace=lad.trace, const=lambda x: x)

    def grad(f, A):
        return np.asarray(lad.grad(f)(A))

    def value(f, A):
        return float(f(A))
    ver = lad.__version__
    try:  # the checkout's commit (+ "-dirty" with uncommitted changes under linalgad/)
        import subprocess
        head = subprocess.run(["git", "-C", _REPO_ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", _REPO_ROOT, "status", "--porcelain", "linalgad"],
                               capture_output=True, text=True, check=True).stdout.strip()
        ver += f" (commit {head}{'-dirty' if dirty else ''})"
    except Exception:  # noqa: BLE001
        pass
    return ns, grad, value, ver


LOADERS = {"linalgad": _load_linalgad, "jax": _load_jax, "torch": _load_torch,
           "autograd": _load_autograd}


# ---------------------------------------------------------------------------------------
# FD reference and projections
# ---------------------------------------------------------------------------------------
def _fd_entries(kind, A):
    """(index, part) pairs to perturb; part 1 = real, 1j = imaginary."""
    n_rows, n_cols = A.shape
    cplx = np.iscomplexobj(A)
    out = []
    for i in range(n_rows):
        for j in range(n_cols):
            if kind == "eigh" and j > i:
                continue                        # upper triangle: not read by eigh
            out.append(((i, j), 1.0))
            if cplx and not (kind == "eigh" and i == j):
                out.append(((i, j), 1j))        # Im of the diagonal: not read by eigh
    return out


def fd_gradient(kind, f, A, h=FD_H):
    g = np.zeros(A.shape, dtype=A.dtype)
    for idx, part in _fd_entries(kind, A):
        E = np.zeros(A.shape, dtype=A.dtype)
        E[idx] = part * h
        d = (f(A + E) - f(A - E)) / (2 * h)
        g[idx] += d * part                      # part = 1j puts dL/dIm into the imaginary part
    return g


def tri_project(G):
    """Gradient w.r.t. the lower triangle of T of a function of H(T), from a full-matrix G."""
    G = np.asarray(G)
    P = np.tril(G + G.conj().T)
    P[np.diag_indices_from(P)] -= np.real(np.diag(G))
    if not np.iscomplexobj(G):
        return P.real
    return P


def hermitian_from_lower(T):
    L = np.tril(T, -1)
    H = L + L.conj().T + np.diag(np.real(np.diag(T)))
    return H.astype(T.dtype)


# ---------------------------------------------------------------------------------------
def _short(e, n=90):
    msg = " ".join(str(e).split())
    if len(msg) > n:
        msg = msg[: n - 3] + "..."
    return f"{type(e).__name__}: {msg}".replace("|", "\\|")


def _fmt_rel(g, g_fd):
    g = np.asarray(g)
    if g.shape != g_fd.shape:
        return f"shape {g.shape} != {g_fd.shape}", None
    if np.isnan(g).any():
        return "NaN", None
    if np.isinf(g).any():
        return "inf", None
    rel = np.linalg.norm(g - g_fd) / np.linalg.norm(g_fd)
    return f"{rel:.0e}", rel


def probe_conjugation(lib, grad):
    """True when the library returns conj(dL/dRe + i dL/dIm) for a real loss of complex z."""
    ns = lib
    z = np.array([0.5 + 0.25j])

    def f(x):
        return ns.sum(2.0 * ns.real(x) + 3.0 * ns.real(-1j * x))
    g = grad(f, z)[0]
    if np.allclose(g, 2 + 3j):
        return False
    if np.allclose(g, 2 - 3j):
        return True
    raise RuntimeError(f"unexpected complex-gradient convention: {g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(_REPO_ROOT, "benchmarks",
                                                  "results_degenerate.md"))
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()

    data, consts = _inputs()
    npns = _numpy_ns()

    libs, versions, conj_flags, load_errors = {}, {}, {}, {}
    for name in LIBS:
        try:
            ns, grad, value, ver = LOADERS[name]()
            libs[name] = (ns, grad, value)
            versions[name] = ver
            conj_flags[name] = probe_conjugation(ns, grad)
        except Exception as e:  # noqa: BLE001
            load_errors[name] = e
            versions[name] = "not available"
            print(f"[{name}] not available: {_short(e)}", file=sys.stderr)
            libs.pop(name, None)

    rows, details, rels = [], [], {}
    for cid, kind, key, loss, ltxt, itxt, expect in CASES:
        A = data[key]
        A_np = A.copy()

        def f_np(X, loss=loss):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(np.real(loss(npns, X, consts)))
        g_fd = fd_gradient(kind, f_np, A_np)
        val_np = f_np(A_np)
        row = [cid, ltxt.replace("|", "\\|"), itxt]
        if args.v:
            print(f"\n=== case {cid}: {kind} {ltxt} at {itxt}\nFD:\n{np.round(g_fd, 6)}")
        for name in LIBS:
            if name not in libs:
                row.append("not available")
                continue
            ns, grad, value = libs[name]
            c = {k: ns.const(v) for k, v in consts.items()}
            # peers see the Hermitian matrix built from the lower triangle; linalgad sees T
            X = hermitian_from_lower(A) if (kind == "eigh" and name != "linalgad") else A

            def f_lib(Y, loss=loss, ns=ns, c=c):
                return loss(ns, Y, c)
            cell, rel = "", None
            with warnings.catch_warnings(record=True) as wlist:
                warnings.simplefilter("always")
                try:
                    g = grad(f_lib, X.copy())
                    if np.iscomplexobj(g) and conj_flags.get(name):
                        g = np.conj(g)
                    if not np.iscomplexobj(A) and np.iscomplexobj(g):
                        g = np.real(g)
                    if kind == "eigh" and name != "linalgad":
                        g = tri_project(g)
                    cell, rel = _fmt_rel(g, g_fd)
                    try:
                        v = value(f_lib, X.copy())
                        if abs(v - val_np) > 1e-8 * max(1.0, abs(val_np)):
                            details.append(f"case {cid}, {name}: loss value {v:.10g} vs "
                                           f"NumPy's {val_np:.10g} (a different gauge/phase "
                                           "choice of the decomposition)")
                    except Exception as e:  # noqa: BLE001
                        details.append(f"case {cid}, {name}: value failed: {_short(e)}")
                    if args.v:
                        print(f"{name}: rel {cell}\n{np.round(g, 6)}")
                except Exception as e:  # noqa: BLE001
                    cell = _short(e)
                    if args.v:
                        traceback.print_exc()
            cats = sorted({w.category.__name__ for w in wlist})
            if "GaugeWarning" in cats:
                cell += " (GaugeWarning)"
            others = [w for w in wlist if w.category.__name__ != "GaugeWarning"]
            for w in others[:2]:
                details.append(f"case {cid}, {name}: {w.category.__name__}: "
                               f"{' '.join(str(w.message).split())[:160]}")
            rels[(cid, name)] = rel
            row.append(cell)
        if kind == "eig" and "jax" in libs:
            ns, grad, value = libs["jax"]
            alt = NS(**{**ns.__dict__, "eig": ns.eig_optin})
            c = {k: alt.const(v) for k, v in consts.items()}
            try:
                g = np.real(grad(lambda Y, loss=loss: loss(alt, Y, c), A.copy()))
                cell, rel = _fmt_rel(g, g_fd)
            except Exception as e:  # noqa: BLE001
                cell, rel = _short(e), None
            rels[(cid, "jax-optin")] = rel
            details.append(f"case {cid}, jax with `jax.lax.linalg.eig(A, "
                           f"compute_left_eigenvectors=False, enable_eigvec_derivs=True)` "
                           f"instead of `jnp.linalg.eig`: rel {cell}")
        if expect != "exact":
            row[1] += f" ({expect})"
        rows.append(row)
        print(" | ".join(row))

    # ------------------------------------------------------------------ markdown
    hdr = ["case", "loss", "input"] + list(LIBS)
    lines = ["# Gradients at hard spectral inputs: linalgad and its peers vs finite differences",
             "",
             "Generated by `taskset -c 0 .venv-bench/bin/python benchmarks/degenerate_peers.py`.",
             "Each cell: `||g - g_fd|| / ||g_fd||` for that library's gradient, or NaN / inf, or "
             "the exception it raised. `(GaugeWarning)`: linalgad warned during the reverse pass.",
             "",
             "| " + " | ".join(hdr) + " |",
             "|" + "|".join("---" for _ in hdr) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines += ["",
              f"Date: {DATE}. Versions: " + ", ".join(
                  f"{k} {versions[k]}" for k in LIBS) +
              f", NumPy {np.__version__} (FD reference), Python {sys.version.split()[0]}; "
              "CPU, float64 / complex128, JAX with `jax_enable_x64`, pinned to one core.",
              "",
              "**FD method.** Central differences `(L(A + hE) - L(A - hE)) / 2h`, h = 1e-6, over "
              "every real entry (and, for complex inputs, every imaginary part, giving "
              "`dL/dRe + i dL/dIm`), with L evaluated in float64 NumPy (`numpy.linalg.eigh`, "
              "`svd(full_matrices=False)`, `eig`). For eigh the function is f(T) with the "
              "Hermitian matrix read from the lower triangle of T as `np.linalg.eigh(T)` reads it: "
              "FD over the strictly-lower entries (Re and Im) and Re of the diagonal; the upper "
              "triangle and Im of the diagonal have zero gradient.",
              "",
              "**Projections.** linalgad's eigh is given T (= the Hermitian matrix itself) and "
              "its full gradient (upper triangle expected 0) is compared as returned. JAX, PyTorch "
              "and autograd are given the full Hermitian matrix H and their full-matrix gradient "
              "G is projected onto the lower triangle: `tril(G + G^H) - Re diag(G)` (depends only "
              "on G + G^H, so symmetrized and triangular conventions agree). svd and eig "
              "gradients are compared unprojected. Complex gradients: convention "
              "`dL/dRe + i dL/dIm`; probed per library on `2 Re z + 3 Im z`: conjugated for " +
              (", ".join(k for k in LIBS if conj_flags.get(k)) or "none") + ".",
              ""]
    if load_errors:
        lines.append("**Not available:** " + "; ".join(
            f"{k}: {_short(e, 140)}" for k, e in load_errors.items()))
        lines.append("")
    lines += ["**Notes on the cases.**",
              "",
              "- Case 4 (`<W, sin(A)>` through eigh at a repeated eigenvalue) and case 14 "
              "(`<W, A>` through svd at a repeated nonzero singular value) are smooth functions "
              "of A (FD is well defined), but their gradient is not recoverable from the "
              "cotangents (w_bar, V_bar) / (U_bar, s_bar, V_bar) alone at an exactly repeated "
              "value: linalgad documents this limit (GaugeWarning, in-cluster rotation held "
              "fixed).",
              "- Cases 6 (phase-dependent) and 7 (basis inside a degenerate eigenspace) are "
              "ill-posed: the FD column there is the derivative of NumPy/LAPACK's particular "
              "gauge choice, and for case 7 not even that (the chosen eigenvector jumps with the "
              "perturbation), so a small rel there is luck, not correctness; an error or a "
              "warning is the right answer.",
              "- Case 12 as specified: sum(s) (nuclear norm) is not differentiable at a "
              "rank-deficient matrix (|s_3| has a kink at 0). Central FD gives the symmetric "
              "(minimum-norm) subgradient U_r V_r^T, while a rule that takes s_bar_3 = 1 adds "
              "u_3 v_3^T for whatever null vectors LAPACK returned, so every library is expected "
              "to be off by O(1) there. Row 12b replaces sum(s) by sum(s^2) (smooth) to test the "
              "same rank-deficient thin SVD.",
              "- JAX: `jnp.linalg.eig` refuses to differentiate (NotImplementedError: eigenvector "
              "derivatives need `enable_eigvec_derivs=True` on `jax.lax.linalg.eig`), even for a "
              "loss of the eigenvalues only (case 16); the opt-in call is measured under "
              "Details.",
              "- autograd's eigh rule divides by the unguarded gap w_j - w_i like JAX's and "
              "PyTorch's; on case 2 it matches FD only because its einsum computes the skew part "
              "of V^T V_bar on the degenerate pair as exactly 0 (matmul gives 1.9e-16, which the "
              "2.2e-16 gap turns into an O(1) error: what JAX and PyTorch show). Roundoff luck, "
              "not a guard.",
              "- autograd's svd rule always forms 1/(s_j^2 - s_i^2) and multiplies it by "
              "U^T U_bar - (U^T U_bar)^H, even when U_bar = 0: at A = I (case 10) that is "
              "inf * 0 = NaN.",
              ""]
    if details:
        lines.append("**Details (loss-value differences and warnings other than GaugeWarning).**")
        lines.append("")
        lines += [f"- {d}" for d in details]
        lines.append("")
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
