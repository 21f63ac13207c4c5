"""Run Python code in a subprocess where `sapiensid_hf` cannot be imported (a machine without the package)."""

import subprocess
import sys
import textwrap

BLOCK_PACKAGE = """
import sys
class _BlockSapiensID:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sapiensid_hf":
            raise ImportError("sapiensid_hf is blocked in this test")
sys.meta_path.insert(0, _BlockSapiensID())
"""


def run_without_package(script: str, timeout: int = 300) -> str:
    """Run `script` with the package blocked; return its stdout, or fail with its stderr."""
    code = BLOCK_PACKAGE + textwrap.dedent(script)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
