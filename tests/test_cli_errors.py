"""The command line reports its own usage errors as one line, exit status 2."""

import pytest


def test_click_usage_errors_are_one_line_exit_2(capsys):
    from infersim.cli import main

    for argv in (["roofline", "--model", "llama-3.1-8b", "--hardware", "h100", "--batch", "-1"],
                 ["compare"], ["no-such-command"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("infersim: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, given", [
    (["--batch", "0"], "0"), (["--batch=abc"], "abc"), (["--tp", "1", "--batch", "-3"], "-3"),
])
def test_a_bad_option_value_is_named_with_what_was_given(capsys, argv, given):
    from infersim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["roofline", "--model", "llama-3.1-8b", "--hardware", "h100", *argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("infersim: error: infersim roofline: Invalid value for '--batch': ")
    assert err.endswith(f"; got {given}\n"), err

