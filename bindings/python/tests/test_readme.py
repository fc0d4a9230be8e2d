# SPDX-License-Identifier: MIT
"""The examples in bindings/python/README.md and in the project README's
Python section run and print what the READMEs say they print."""
import os
import re
import subprocess
import sys

from conftest import SOURCE_DIR


def run_readme(path):
    """Runs every python block followed by a text block: its output."""
    text = open(path).read()
    examples = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", text,
                          re.S)
    assert examples
    for code, expected in examples:
        out = subprocess.run([sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ))
        assert out.returncode == 0, out.stderr
        assert out.stdout == expected


def test_readme_example_runs_as_shown():
    run_readme(os.path.join(SOURCE_DIR, "README.md"))


def test_project_readme_python_section_runs_as_shown():
    run_readme(os.path.join(SOURCE_DIR, "..", "..", "README.md"))
