"""Property tests: solve on systems drawn by the public Hypothesis strategies."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads
from linalgad.testing import strategies as lst


@given(lst.square_system(batch=lst.batch_shapes(max_dims=2, max_side=3),
                         dtype=lst.dtypes()))
def test_solve_value_and_derivatives_on_drawn_systems(system):
    A, b = system
    x = la.solve(A, b)
    single = A.dtype in (np.float32, np.complex64)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=2e-4 if single else 1e-10,
                               atol=1e-5 if single else 1e-12)
    check_grads(la.solve, (A, b), order=1)


@given(lst.spd(n=st.integers(1, 6), batch=lst.batch_shapes(max_dims=1), dtype=lst.dtypes()),
       st.booleans())
def test_positive_definite_solve_gradient_lives_on_the_read_triangle(A, lower):
    b = np.ones(A.shape[:-1] + (2,), dtype=A.dtype)
    g = lad.grad(lambda A: lad.sum(lad.abs(la.solve(A, b, assume_a="pos", lower=lower)) ** 2))(A)
    unread = np.triu(g, 1) if lower else np.tril(g, -1)
    assert np.all(unread == 0)
    assert g.dtype == A.dtype
