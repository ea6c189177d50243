"""Command-line flags from a script's config block: every config name is a flag, its comment is the help.

A config block is the part of a script between two marker lines, `# ---...--- config` and `# ---...---` (77
dashes each), holding `name = default  # help` lines, the help continued on indented comment lines, and
`# section` lines that group the flags in --help. Reading the comments keeps --help and the code in one place.
"""

import argparse
import re

from training.model import ARCHS
from training.schedule import SCHEDULES

START = "# " + "-" * 77 + " config\n"
END = "# " + "-" * 77 + "\n"


def config_help(source: str, names) -> tuple:
    """({name: help text}, [(section, [names])]) from the config block in a script's `source` text."""
    helps, sections, name = {}, [], None
    lines = source.split(START, 1)[1].split(END, 1)[0].splitlines()
    for line in lines:
        m = re.match(r"^(\w+) += .*?# (.*)$", line)
        if m and m.group(1) in names:
            name = m.group(1)
            helps[name] = m.group(2).strip()
            sections[-1][1].append(name)
        elif re.match(r"^ +# ", line) and name:
            helps[name] += " " + line.strip()[2:]
        elif line.startswith("# "):
            sections.append((line[2:].strip(), []))
            name = None
    return helps, sections


def default_text(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if v == "":
        return "none"
    return repr(v) if isinstance(v, str) else str(v)


def make_parser(source: str, defaults: dict, doc: str) -> argparse.ArgumentParser:
    """An argparse parser with `--name-with-dashes` per config name (`--x` / `--no-x` for booleans)."""
    p = argparse.ArgumentParser(
        description=doc.split("\n")[0],
        epilog=doc.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    helps, sections = config_help(source, defaults)
    assert set(helps) == set(defaults), f"config names without a comment: {set(defaults) - set(helps)}"
    for section, names in sections:
        group = p.add_argument_group(section)
        for k in names:
            v = defaults[k]
            flag = "--" + k.replace("_", "-")
            text = f"{helps[k]} (default: {default_text(v)})".replace("%", "%%")
            if isinstance(v, bool):
                group.add_argument(flag, dest=k, action=argparse.BooleanOptionalAction, default=v, help=text)
            else:
                metavar = type(v).__name__.upper().replace("STR", "TEXT")
                group.add_argument(flag, dest=k, type=type(v), default=v, help=text, metavar=metavar)
    return p


def parse_flags(argv, source: str, defaults: dict, doc: str) -> dict:
    """The config: defaults overridden by argv. Unknown flags and bad values exit 2 with argparse's message."""
    p = make_parser(source, defaults, doc)
    cfg = vars(p.parse_args(argv))
    problem = check(cfg)
    if problem:
        p.error(problem)
    return cfg


def check(cfg: dict) -> str:
    """What is wrong with a train.py config, or ''. The values' types argparse has checked already."""
    one_of = {
        "arch": ARCHS,
        "source_input": ("torchvision", "caffe"),
        "schedule": SCHEDULES,
        "convolutions": ("int8", "fp32"),
        "device": ("auto", "cuda", "cpu"),
    }
    for name, allowed in one_of.items():
        if cfg[name] not in allowed:
            return f"--{name.replace('_', '-')} {cfg[name]!r} is not one of {', '.join(allowed)}"
    if cfg["schedule"] == "cyclic" and not 0 <= cfg["lr_min"] <= cfg["lr"]:
        return "--lr-min must lie between 0 and --lr"
    if not 0 <= cfg["swa_epochs"] <= cfg["epochs"]:
        return "--swa-epochs must lie between 0 and --epochs"
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1 or cfg["lr"] <= 0:
        return "--epochs, --batch-size and --lr must be positive"
    if cfg["export_only"] and (not (cfg["resume"] or cfg["init"]) or not cfg["export_dir"]):
        return "--export-only needs --resume CHECKPOINT (or --init PACKAGE) and --export-dir DIR"
    for flag in ("from_torchvision", "from_onnx"):
        if cfg[flag] and not cfg["export_dir"]:
            return f"--{flag.replace('_', '-')} needs --export-dir DIR"
    if cfg["from_onnx"] and cfg["from_torchvision"]:
        return "--from-onnx and --from-torchvision convert one source each: give one"
    if cfg["freeze_features"] and not cfg["init"]:
        return "--freeze-features keeps loaded features: it needs --init"
    if cfg["head_lr_ratio"] <= 0:
        return "--head-lr-ratio must be positive"
    if cfg["ten_crop"] and cfg["dataset"] == "fashion-mnist":
        return "--ten-crop applies to image-folder datasets (Fashion-MNIST is resized to the input, no crops)"
    return ""
