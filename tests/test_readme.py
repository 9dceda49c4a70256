"""The README's example runs as written (it is the first thing a newcomer copies)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks, "README has no python example"
    namespace = {"__name__": "__readme__"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["g"].shape == (2,)


def test_examples_run(capsys):
    """Every script in examples/ runs as a program (each asserts its own result)."""
    import runpy
    import warnings
    for path in sorted((ROOT / "examples").glob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # an example may show a warning on purpose
            runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "step 5" in out and "no Newton step can be taken" in out
