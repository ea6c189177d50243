#!/bin/sh
# Usage: sh scripts/python.sh ARGS...
# Runs the Python that has PyTorch: $PYTHON if set, else the first of python3 / Debian's /usr/bin/python3
# that can import torch (on Debian, PyTorch from apt is only visible to /usr/bin/python3).
for candidate in "$PYTHON" python3 /usr/bin/python3; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c "import torch" >/dev/null 2>&1; then exec "$candidate" "$@"; fi
done
echo "error: no Python with PyTorch found. Install it (Debian: apt-get install python3-torch python3-torchvision) or set PYTHON=/path/to/python3" >&2
exit 1
