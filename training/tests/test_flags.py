"""Flags from a config block: names, help from comments, booleans, and the checks on train.py's values."""

import pytest

from conftest import train_defaults
from training.flags import check, config_help, default_text, make_parser, parse_flags

DASHES = "-" * 77
SOURCE = f'''"""Try it.

Usage text.
"""
# {DASHES} config
# data
size = 64                   # the input side
                            # in pixels
name = "x"                  # a name
# system
fast = True                 # go fast
# {DASHES}
'''
DEFAULTS = {"size": 64, "name": "x", "fast": True}
DOC = SOURCE.split('"""')[1]


def test_help_texts_are_the_comments_continued_lines_joined_grouped_by_section():
    helps, sections = config_help(SOURCE, DEFAULTS)
    assert helps == {"size": "the input side in pixels", "name": "a name", "fast": "go fast"}
    assert sections == [("data", ["size", "name"]), ("system", ["fast"])]
    assert [default_text(v) for v in (True, False, "", "a", 0.5)] == ["on", "off", "none", "'a'", "0.5"]


def test_flags_parse_with_the_defaults_types_and_booleans_both_ways():
    parser = make_parser(SOURCE, DEFAULTS, DOC)
    assert vars(parser.parse_args([])) == DEFAULTS
    assert vars(parser.parse_args(["--size", "32", "--name", "y", "--no-fast"])) == {
        "size": 32,
        "name": "y",
        "fast": False,
    }
    assert "the input side in pixels (default: 64)" in " ".join(parser.format_help().split())


def test_an_unknown_flag_or_a_bad_value_exits_2(capsys):
    for argv in (["--bogus"], ["--size", "big"]):
        with pytest.raises(SystemExit) as exit_:
            make_parser(SOURCE, DEFAULTS, DOC).parse_args(argv)
        assert exit_.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_a_config_name_without_a_comment_is_refused():
    with pytest.raises(AssertionError, match="without a comment"):
        make_parser(SOURCE, dict(DEFAULTS, other=1), DOC)


def test_train_py_defaults_pass_the_checks_and_each_check_names_its_flag():
    source, defaults = train_defaults()
    cfg = parse_flags([], source, defaults, "x\n\ny")
    assert check(cfg) == "" and cfg["schedule"] == "plateau" and cfg["lr"] == 0.01
    bad = {
        "--arch 'resnet' is not one of": {"arch": "resnet"},
        "--schedule 'linear' is not one of": {"schedule": "linear"},
        "--lr-min must lie between 0 and --lr": {"schedule": "cyclic", "lr_min": 1.0},
        "--swa-epochs must lie between 0 and --epochs": {"swa_epochs": 91},
        "--export-only needs --resume": {"export_only": True},
        "--from-onnx needs --export-dir": {"from_onnx": "a.onnx"},
        "--freeze-features keeps loaded features": {"freeze_features": True},
        "--ten-crop applies to image-folder datasets": {"ten_crop": True},
        "--epochs, --batch-size and --lr must be positive": {"batch_size": 0},
    }
    for message, change in bad.items():
        assert check(dict(cfg, **change)).startswith(message), change
