#!/usr/bin/env bash
# Assemble docs/results.md from the pages the experiment scripts write:
# docs/results_fmnist.md (scripts/results_fmnist.sh), docs/results_relax.md
# (scripts/results_relax.sh), docs/results_nbody.md (scripts/results_nbody.sh)
# and docs/results_segnn.md (scripts/results_segnn.sh). Each script calls this at its end; headings of
# the parts are demoted by one level under the page's own title.
set -euo pipefail
cd "$(dirname "$0")/.."
{
    echo "# Results"
    echo
    echo "Every figure below was measured by the script named in its section;"
    echo "rerun that script to reproduce it. Every accuracy or MSE is of the"
    echo "projected (exactly equivariant) model unless the row says otherwise."
    for part in docs/results_fmnist.md docs/results_relax.md docs/results_nbody.md docs/results_segnn.md; do
        [ -f "$part" ] || continue
        echo
        sed 's/^#/##/' "$part"
    done
} > docs/results.md
echo "wrote docs/results.md" >&2
