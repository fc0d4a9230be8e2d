# SPDX-License-Identifier: MIT
"""The example in bindings/python/README.md runs and prints what the
README says it prints."""
import os
import re
import subprocess
import sys

from conftest import SOURCE_DIR


def test_readme_example_runs_as_shown():
    text = open(os.path.join(SOURCE_DIR, "README.md")).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
