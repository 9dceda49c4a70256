"""Differentiable linear algebra with NumPy's and SciPy's names and conventions.

A user changes an import, not their code::

    from linalgad import linalg as la      # instead of numpy.linalg / scipy.linalg
    x = la.solve(A, b, assume_a="pos")

Each function here is backed by a rule family in ``linalgad/rules/`` (see
``python -m linalgad rules``).  Applied to traced values, NumPy's own
functions (``np.linalg.solve``, ``np.linalg.inv``, ...) are routed here too.

Where NumPy and SciPy disagree, the NumPy convention is the default and the
SciPy keyword is accepted: ``cholesky`` returns the lower factor unless
``lower=False`` (SciPy) or ``upper=True`` (NumPy 2); ``qr`` takes NumPy's
modes ('reduced', 'complete', 'r') and SciPy's names for them ('economic',
'full').  ``eig`` and ``eigvals`` always return complex arrays.

Spectral rules (``eigh``, ``svd``, ``eig`` and their values-only forms) are
exact at repeated eigenvalues and singular values for losses that do not
depend on the basis of a cluster, and say so (``GaugeWarning``, or
ValueError for a phase-dependent loss) when a loss does.
"""

from __future__ import annotations

import numpy as np

from ._array_methods import register_numpy_function
from .rules._spectral import GaugeWarning
from .rules.banded import solve_banded, solveh_banded
from .rules.banded_cholesky import cho_solve_banded, cholesky_banded
from .rules.cholesky import cho_factor, cho_solve, cholesky, logdet
from .rules.determinant import SlogdetResult, det, slogdet
from .rules.eig import EigResult, eig, eigvals
from .rules.eigh import EighResult, eigh, eigvalsh
from .rules.eig_banded import eig_banded, eigvals_banded
from .rules.eigh_tridiagonal import eigh_tridiagonal, eigvalsh_tridiagonal
from .rules.funmh import funmh
from .rules.funm import funm
from .rules.generalized_funm import generalized_funm
from .rules.inverse import inv
from .rules.ldl import ldl
from .rules.linear_maps import cdf2rdf, clarkson_woodruff_transform, matrix_balance
from .rules.lstsq import lstsq, pinv, pinvh
from .rules.lu import lu, lu_factor, lu_solve
from .rules.signm import signm
from .rules.schur import rsf2csf, schur
from .rules.qz import ordqz, qz
from .rules.matfuncs import (cosm, coshm, expm, expm_cond, expm_frechet, fractional_matrix_power, logm,
                             sinhm, sinm, sqrtm, tanhm, tanm)
from .rules.norms import (cond, cross, diagonal, matmul, matrix_norm, matrix_power, matrix_rank,
                          matrix_transpose, multi_dot, norm, outer, tensordot, tensorinv,
                          tensorsolve, trace, vecdot, vector_norm)
from .rules.polar import orthogonal_procrustes, polar
from .rules.cossin import cossin
from .rules.qr import QRResult, qr, rq
from .rules.qr_update import qr_delete, qr_insert, qr_multiply, qr_update
from .rules.hessenberg import hessenberg
from .rules.solve import solve
from .rules.subspaces import null_space, orth, subspace_angles
from .rules.svd import SVDResult, svd, svdvals
from .rules.sylvester import (solve_continuous_lyapunov, solve_discrete_lyapunov,
                              solve_lyapunov, solve_sylvester)
from .rules.riccati import solve_continuous_are, solve_discrete_are
from .rules.toeplitz import matmul_toeplitz, solve_toeplitz, toeplitz
from .rules.circulant import circulant, solve_circulant
from .rules.special_matrices import (bandwidth, block_diag, companion, convolution_matrix, dft,
                                     diagsvd, fiedler, fiedler_companion, hadamard, hankel,
                                     helmert, hilbert, invhilbert, invpascal, ishermitian,
                                     issymmetric, khatri_rao, leslie, pascal)
from .rules.triangular import solve_triangular

__all__ = ["solve", "solve_triangular", "solve_banded", "solveh_banded", "cholesky_banded",
           "cho_solve_banded", "inv", "det", "slogdet", "cholesky", "cho_factor",
           "cho_solve", "logdet", "lu_factor", "lu_solve", "lu", "ldl", "qr", "rq", "qr_multiply", "qr_update", "qr_insert", "qr_delete", "hessenberg", "eigh", "eigvalsh", "eigh_tridiagonal",
           "eigvalsh_tridiagonal", "eig_banded", "eigvals_banded", "funmh", "funm", "svd", "svdvals", "generalized_funm",
           "eig", "eigvals", "lstsq", "pinv", "pinvh", "expm", "expm_frechet", "expm_cond", "sqrtm", "logm",
           "cosm", "sinm", "tanm", "coshm", "sinhm", "tanhm", "signm", "schur", "rsf2csf", "qz", "ordqz", "fractional_matrix_power",
           "solve_sylvester", "solve_continuous_lyapunov", "solve_discrete_lyapunov", "solve_lyapunov",
           "solve_continuous_are", "solve_discrete_are", "solve_toeplitz", "matmul_toeplitz",
           "toeplitz", "solve_circulant", "circulant", "block_diag", "hankel", "khatri_rao",
           "companion", "convolution_matrix", "diagsvd", "leslie", "fiedler",
           "fiedler_companion", "bandwidth", "ishermitian", "issymmetric", "dft", "hadamard",
           "helmert", "hilbert", "invhilbert", "pascal", "invpascal", "matrix_balance", "cdf2rdf", "clarkson_woodruff_transform", "polar", "orthogonal_procrustes", "cossin", "orth", "null_space", "subspace_angles",
           "norm", "matrix_norm", "vector_norm", "cond", "matrix_power", "multi_dot", "trace",
           "diagonal", "matrix_transpose", "outer", "vecdot", "cross", "tensordot", "matmul",
           "matrix_rank", "tensorinv", "tensorsolve", "LinAlgError", "LinAlgWarning", "GaugeWarning", "SlogdetResult", "QRResult",
           "EighResult", "SVDResult", "EigResult"]

LinAlgError = np.linalg.LinAlgError
from scipy.linalg import LinAlgWarning  # noqa: E402  (SciPy's, so that filters match)

for _np_fn, _fn in ((np.linalg.solve, solve), (np.linalg.inv, inv), (np.linalg.det, det),
                    (np.linalg.slogdet, slogdet), (np.linalg.cholesky, cholesky),
                    (np.linalg.qr, qr), (np.linalg.eigh, eigh), (np.linalg.eigvalsh, eigvalsh),
                    (np.linalg.svd, svd), (np.linalg.eig, eig), (np.linalg.eigvals, eigvals),
                    (np.linalg.lstsq, lstsq), (np.linalg.pinv, pinv), (np.linalg.norm, norm),
                    (np.linalg.cond, cond), (np.linalg.matrix_power, matrix_power),
                    (np.linalg.multi_dot, multi_dot)) + \
        tuple((getattr(np.linalg, name), fn) for name, fn in (
            ("svdvals", svdvals), ("matrix_norm", matrix_norm), ("vector_norm", vector_norm),
            ("trace", trace), ("diagonal", diagonal), ("matrix_transpose", matrix_transpose),
            ("outer", outer), ("vecdot", vecdot), ("cross", cross), ("tensordot", tensordot),
            ("matmul", matmul), ("matrix_rank", matrix_rank), ("tensorinv", tensorinv),
            ("tensorsolve", tensorsolve)) if hasattr(np.linalg, name)):
    register_numpy_function(_np_fn, _fn)
