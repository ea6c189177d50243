"""Each script's `--help` explains every option in a sentence, and states the default of those that take a value."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

OPTION = re.compile(r"^  (--[a-z0-9-]+)(?:, --no-[a-z0-9-]+)?(?: [A-Z_{},a-z0-9-]+)?(?:\s+|\n\s+)(.*)$", re.M)


def help_options(script):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", script), "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="2000"),
    )
    assert proc.returncode == 0, proc.stderr
    options = [(name, text) for name, text in OPTION.findall(proc.stdout) if name != "--help"]
    assert options, proc.stdout
    return dict(options)


def test_help_gives_every_option_a_sentence_and_its_default():
    options = help_options("train.py")
    for flag in ("--init", "--freeze-features", "--head-lr-ratio", "--from-onnx", "--labels", "--workers", "--lr"):
        assert flag in options, f"{flag} is missing from --help"
    assert len(options) > 40
    for name, text in options.items():
        assert len(text.split()) >= 4 and re.search(r"\(default: [^)]+\)$", text), f"{name}: {text!r}"
    assert "(default: 10.0)" in options["--head-lr-ratio"]


# The value options whose default each script's --help must state; flags (store_true) need only a sentence.
VALUED = {
    "export_onnx.py": {"--out", "--form", "--layout"},
    "evaluate_package.py": {"--fit", "--eval", "--fmnist-dir", "--ood-scale", "--threads"},
    "onnx_top1.py": {"--count", "--form", "--batch", "--threads", "--bound", "--fmnist-dir"},
}


@pytest.mark.parametrize("script", sorted(VALUED))
def test_export_and_evaluation_scripts_explain_every_option(script):
    options = help_options(script)
    assert VALUED[script] <= set(options), f"missing from --help: {VALUED[script] - set(options)}"
    for name, text in options.items():
        assert len(text.split()) >= 4, f"{script} {name}: {text!r}"
        if name in VALUED[script]:
            assert re.search(r"\(default: [^)]+\)$", text), f"{script} {name}: {text!r}"
