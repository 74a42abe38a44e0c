# Helper of the resumable results scripts (sourced; export -f it for runs
# started through xargs): a run's output file is finished once its last
# line is the program's result line.

# has_result FILE: status 0 if FILE exists and ends with its result line.
has_result() { [ -f "$1" ] && tail -n 1 "$1" | grep -q '^result '; }
