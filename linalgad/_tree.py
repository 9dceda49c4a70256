"""Nested containers of arrays ("pytrees"): tuples, lists, dicts and None.

Transforms accept and return such structures; gradients mirror them.  Dicts
are flattened in sorted key order (as JAX does), so the order of leaves does
not depend on insertion order.
"""

from __future__ import annotations

__all__ = ["tree_flatten", "tree_unflatten", "tree_map"]


class TreeDef:
    """The shape of a nested structure, without its leaves."""

    __slots__ = ("kind", "meta", "children", "flat")

    def __init__(self, kind, meta, children):
        self.kind = kind          # "leaf", "none", tuple, list or dict
        self.meta = meta          # dict keys (sorted) for dicts, else None
        self.children = children  # tuple of TreeDef
        # a plain tuple or list whose children are all leaves (argument tuples)
        self.flat = (kind is tuple or kind is list) and meta is None and \
            all(c.kind == "leaf" for c in children)

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def _key(self):
        # a named tuple matches a plain tuple of the same structure (cotangents may be either)
        if self.meta == "namedtuple":
            return (tuple, None)
        return (self.kind, self.meta)

    @property
    def exact(self):
        """A hashable key that tells named tuple classes apart (and from plain tuples),
        which equality does not (cotangents may come as either): linalgad.jit keys its
        recordings by it, since a replay rebuilds the recorded classes."""
        if self.kind == "leaf" or self.kind == "none":
            return self.kind
        return (self.kind, self.meta, tuple(c.exact for c in self.children))

    def __eq__(self, other):
        return (isinstance(other, TreeDef) and self._key() == other._key()
                and self.children == other.children)

    def __hash__(self):
        return hash((self._key(), self.children))

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        if self.kind is dict:
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children))
            return "{" + inner + "}"
        inner = ", ".join(repr(c) for c in self.children)
        return f"({inner},)" if self.kind is tuple else f"[{inner}]"


_LEAF = TreeDef("leaf", None, ())
_NONE = TreeDef("none", None, ())


_CONTAINERS = (tuple, list, dict)
_FLAT = {}   # (tuple or list, length) -> TreeDef: the common argument tuples, built once


def tree_flatten(tree):
    """Return (leaves, treedef).  None is an empty subtree, not a leaf."""
    kind = type(tree)
    if kind is tuple or kind is list:
        for t in tree:           # a flat tuple of leaves: no recursion, a cached TreeDef
            if t is None or isinstance(t, _CONTAINERS):
                break
        else:
            key = (kind, len(tree))
            treedef = _FLAT.get(key)
            if treedef is None:
                treedef = _FLAT[key] = TreeDef(kind, None, (_LEAF,) * len(tree))
            return list(tree), treedef
    leaves = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(tree, leaves):
    kind = type(tree)
    if kind is tuple or kind is list:
        return TreeDef(kind, None, tuple(_flatten(t, leaves) for t in tree))
    if kind is dict:
        keys = tuple(sorted(tree))
        return TreeDef(dict, keys, tuple(_flatten(tree[k], leaves) for k in keys))
    if isinstance(tree, tuple) and hasattr(kind, "_fields"):   # a named tuple (QRResult, ...)
        return TreeDef(kind, "namedtuple", tuple(_flatten(t, leaves) for t in tree))
    if tree is None:
        return _NONE
    leaves.append(tree)
    return _LEAF


def tree_unflatten(treedef, leaves):
    """Inverse of tree_flatten."""
    if treedef.flat:
        return treedef.kind(leaves)
    if treedef is _LEAF:
        return leaves[0]
    it = iter(leaves)
    out = _unflatten(treedef, it)
    return out


def _unflatten(treedef, it):
    kind = treedef.kind
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    children = [_unflatten(c, it) for c in treedef.children]
    if kind is dict:
        return dict(zip(treedef.meta, children))
    if treedef.meta == "namedtuple":
        return kind(*children)
    return kind(children)


def tree_map(fn, tree, *rest):
    """Apply fn leaf-wise to one or more trees of the same structure."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r)
        if r_def != treedef:
            raise ValueError(f"tree structures differ: {treedef!r} and {r_def!r}")
        others.append(r_leaves)
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
