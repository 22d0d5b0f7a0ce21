"""Make the repository root importable (``import dassl``, ``import train``) from any working directory."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))  # shared helpers (cli_runner.py) for every test folder
if TESTS_DIR not in sys.path:
    sys.path.insert(1, TESTS_DIR)
