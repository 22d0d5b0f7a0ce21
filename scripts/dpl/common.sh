#!/bin/bash
# Kept for scripts that source it: the launchers' library is scripts/lib/launch.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/launch.sh"
