"""`train.py --help` explains every option and states its default."""

import os
import re
import subprocess
import sys

from conftest import ROOT


def test_help_gives_every_option_a_sentence_and_its_default():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="2000"),
    )
    assert proc.returncode == 0, proc.stderr
    options = re.findall(r"^  (--[a-z0-9-]+)(?:, --no-[a-z0-9-]+)?(?: [A-Z]+)?\s+(.*)$", proc.stdout, re.M)
    names = {name for name, _ in options}
    for flag in ("--init", "--freeze-features", "--head-lr-ratio", "--from-onnx", "--labels", "--workers", "--lr"):
        assert flag in names, f"{flag} is missing from --help"
    assert len(options) > 40
    for name, text in options:
        assert len(text.split()) >= 4 and re.search(r"\(default: [^)]+\)$", text), f"{name}: {text!r}"
    assert "(default: 10.0)" in dict(options)["--head-lr-ratio"]
