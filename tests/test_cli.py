"""The command line, run as users run it."""

import subprocess
import sys

import pytest

import linalgad as lad
from linalgad.__main__ import main


def test_rules_lists_every_rule(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert "solve" in out and "docs/derivations/solve.md" in out


def test_check_passes_and_prints_the_table(capsys):
    assert main(["check", "--size", "3", "--dtype", "float64", "--dtype", "complex64",
                 "--batch", "", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    for column in ("rule", "mode", "max rel err", "fwd+bwd", "ratio"):
        assert column in out
    assert "FAIL" not in out and " 0 failed" in out


def test_check_fails_when_a_rule_is_wrong(monkeypatch, capsys):
    import linalgad.rules.solve as S
    original = S._solve.vjp

    def wrong(*args, **kwargs):
        A_bar, b_bar = original(*args, **kwargs)
        return (None if A_bar is None else 1.01 * A_bar), b_bar

    monkeypatch.setattr(S._solve, "vjp", wrong)
    assert main(["check", "--size", "3", "--dtype", "float64", "--batch", ""]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_compares_jit_replays_with_eager(monkeypatch, capsys):
    """A replay that differed from the eager result would be a FAIL of the rev row."""
    from linalgad import transforms
    original = transforms._compile

    def stale(*args):
        replay, source = original(*args)

        def wrong(*arrays):
            value, grads = replay(*arrays)
            return value, tuple(1.01 * g for g in grads)
        return wrong, source

    assert main(["check", "--rule", "solve", "--size", "3", "--dtype", "float64",
                 "--batch", ""]) == 0
    assert "jit" in capsys.readouterr().out
    monkeypatch.setattr(transforms, "_compile", stale)
    assert main(["check", "--rule", "solve", "--size", "3", "--dtype", "float64",
                 "--batch", ""]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_gpu_check_without_a_gpu_says_so():
    from linalgad.gpu import available
    if available():
        pytest.skip("a GPU is present")
    assert main(["check", "--device", "gpu"]) == 2


def test_module_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "linalgad", "rules"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "solve" in res.stdout


def test_check_reports_gauge_warnings_once_below_the_table():
    """A GaugeWarning raised while a case is checked marks its rows "(warned)" and is listed
    after the table (svd's second-order one where a float32 draw has two singular values
    within eps^(1/3)); any other warning passes through."""
    import warnings

    from linalgad.__main__ import _sort_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("svd: second derivatives ...", lad.GaugeWarning)
        warnings.warn("something else", RuntimeWarning)
    warned = {}
    with warnings.catch_warnings(record=True) as passed:
        warnings.simplefilter("always")
        assert _sort_warnings(caught, "svd/square/float32/(3,)", warned)
    assert warned == {"svd/square/float32/(3,)": "svd: second derivatives ..."}
    assert [str(w.message) for w in passed] == ["something else"]
    assert not _sort_warnings([], "eigh/hermitian/float64/-", warned)


@pytest.mark.parametrize("argv, message", [
    (["--batch", "x"], "stack shape"), (["--batch", "2,-1"], "stack shape"),
    (["--size", "-1"], "positive integer"), (["--size", "two"], "positive integer"),
    (["--rule", "nosuch"], "unknown rule 'nosuch'")])
def test_bad_check_arguments_are_usage_errors(argv, message, capsys):
    """These ended in tracebacks (or, for an unknown rule, an empty table and exit 1)."""
    with pytest.raises(SystemExit) as exit_:
        main(["check"] + argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
