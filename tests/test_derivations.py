"""Every ```python block in docs/derivations/*.md runs, so no document drifts from the truth."""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "derivations"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for path in sorted(DOCS.glob("*.md")):
        for i, code in enumerate(BLOCK.findall(path.read_text())):
            yield pytest.param(path, code, id=f"{path.stem}-{i}")


BLOCKS = list(_blocks())


def test_there_are_derivation_blocks():
    assert BLOCKS, "no derivation document has a python check block"


@pytest.mark.parametrize("path,code", BLOCKS)
def test_derivation_block_runs(path, code):
    exec(compile(code, str(path), "exec"), {"__name__": "__derivation__"})
