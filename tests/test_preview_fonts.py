"""The dataset's preview.png does not depend on the machine's fonts.

The preview is a file of the dataset, so its bytes are in the dataset's digest, which
`data.dvc` pins. It is drawn the same with FreeType and system fonts reachable (as here)
and with neither: Pillow's FreeType module blocked in a fresh interpreter, which is also
what a Pillow built without FreeType, or a machine with no fonts, would give.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from PIL import features

BLOCK_FREETYPE = "import sys; sys.modules['PIL._imagingft'] = None\n"
RENDER = (
    "import sys\n"
    "from PIL import features\n"
    "from salmubench.cli import main\n"
    "print('freetype', features.check('freetype2'))\n"
    "sys.exit(main(['preview', '--data', sys.argv[1], '--out', sys.argv[2]]))\n"
)


def _render(dataset: Path, out: Path, block: bool) -> str:
    code = (BLOCK_FREETYPE if block else "") + RENDER
    done = subprocess.run([sys.executable, "-c", code, str(dataset), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_preview_bytes_are_the_same_with_and_without_fonts(micro_dataset, tmp_path):
    assert features.check("freetype2")  # here FreeType (and DejaVu) are reachable ...
    with_fonts = _render(micro_dataset, tmp_path / "with.png", block=False)
    without = _render(micro_dataset, tmp_path / "without.png", block=True)
    assert "freetype True" in with_fonts and "freetype False" in without  # ... there not
    digest = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()
              for n in ("with.png", "without.png")}  # fmt: skip
    assert digest["with.png"] == digest["without.png"]
    # and it is the very file synthesis wrote into the dataset
    assert (micro_dataset / "preview.png").read_bytes() == (tmp_path / "with.png").read_bytes()
