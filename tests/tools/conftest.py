import os
import sys

# The tools are run as `python -m tools.<name>` from the repository root; make that root importable
# however pytest is started.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
