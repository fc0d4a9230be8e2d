# SPDX-License-Identifier: MIT
"""The examples in bindings/python/README.md and in the project README's
Python section run and print what the READMEs say they print."""
import os
import re
import subprocess
import sys

from conftest import SOURCE_DIR


def run_readme(path):
    text = open(path).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected


def test_readme_example_runs_as_shown():
    run_readme(os.path.join(SOURCE_DIR, "README.md"))


def test_project_readme_python_section_runs_as_shown():
    run_readme(os.path.join(SOURCE_DIR, "..", "..", "README.md"))
