"""The registry: one frozen :class:`Rule` record per differentiable operation.

Everything that checks or documents rules is generated from here: the test
suite (every rule, on every domain, dtype, batch shape and backend it
declares, in both modes and at second order), ``python -m linalgad rules``
and ``python -m linalgad check``.

Rule families register themselves by listing their records in a module-level
``RULES`` tuple; :data:`RULE_MODULES` is the explicit list of those modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Rule", "Domain", "all_rules", "get_rule", "RULE_MODULES", "DTYPES"]

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)

# The rule families, in the order `linalgad rules` lists them.
RULE_MODULES = (
    "linalgad.rules.solve",
    "linalgad.rules.banded",
    "linalgad.rules.banded_cholesky",
    "linalgad.rules.toeplitz",
    "linalgad.rules.circulant",
    "linalgad.rules.special_matrices",
    "linalgad.rules.linear_maps",
    "linalgad.rules.triangular",
    "linalgad.rules.inverse",
    "linalgad.rules.determinant",
    "linalgad.rules.cholesky",
    "linalgad.rules.lu",
    "linalgad.rules.ldl",
    "linalgad.rules.qr",
    "linalgad.rules.qr_update",
    "linalgad.rules.hessenberg",
    "linalgad.rules.eigh",
    "linalgad.rules.eigh_tridiagonal",
    "linalgad.rules.eig_banded",
    "linalgad.rules.funmh",
    "linalgad.rules.svd",
    "linalgad.rules.generalized_funm",
    "linalgad.rules.eig",
    "linalgad.rules.lstsq",
    "linalgad.rules.matfuncs",
    "linalgad.rules.signm",
    "linalgad.rules.schur",
    "linalgad.rules.qz",
    "linalgad.rules.funm",
    "linalgad.rules.sylvester",
    "linalgad.rules.riccati",
    "linalgad.rules.polar",
    "linalgad.rules.cossin",
    "linalgad.rules.subspaces",
    "linalgad.rules.norms",
)


@dataclass(frozen=True)
class Domain:
    """A family of valid inputs for a rule.

    make(rng, n, batch, dtype) returns ``(args, kwargs)``: the positional
    array arguments (the ones differentiated) and fixed keyword arguments.
    ``real_only`` / ``complex_only`` restrict the dtypes it applies to.
    """

    name: str
    make: Callable
    description: str = ""
    real_only: bool = False
    complex_only: bool = False

    def applies_to(self, dtype):
        is_complex = np.dtype(dtype).kind == "c"
        return not ((self.real_only and is_complex) or (self.complex_only and not is_complex))


@dataclass(frozen=True)
class Rule:
    """A differentiable operation and everything needed to check and document it.

    fun          the public function (in linalgad.linalg) the rule backs
    primitive    the tape primitive(s) implementing it (for listings)
    reference    the same computation with NumPy/SciPy alone (tests compare)
    domains      input families the tests draw from
    derivation   path of the derivation document, relative to the repository
    modes        "rev" and/or "fwd"
    dtypes       supported dtypes
    backends     "cpu" and/or "gpu"
    batch_shapes leading stack shapes the tests use
    loss         maps the rule's output(s) to arrays to contract with random
                 weights in checks (default: the output itself)
    rtol         per-dtype relative tolerance for finite-difference checks,
                 with the reason in ``tolerance_note``
    """

    name: str
    fun: Callable
    primitive: object
    domains: tuple
    derivation: str
    reference: Callable | None = None
    modes: tuple = ("rev", "fwd")
    dtypes: tuple = DTYPES
    backends: tuple = ("cpu", "gpu")
    batch_shapes: tuple = ((), (3,), (2, 1))
    loss: Callable | None = None
    rtol: dict = field(default_factory=lambda: {"float32": 2e-2, "float64": 1e-6})
    tolerance_note: str = "central differences: O(h^2) truncation + O(eps/h) rounding"
    references: tuple = ()

    def tolerance(self, dtype):
        single = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
        return self.rtol["float32" if single else "float64"]


def all_rules():
    """Every registered rule, in RULE_MODULES order."""
    rules = []
    for name in RULE_MODULES:
        rules.extend(importlib.import_module(name).RULES)
    return rules


def get_rule(name):
    for r in all_rules():
        if r.name == name:
            return r
    raise KeyError(f"no rule named {name!r}; registered: {[r.name for r in all_rules()]}")
