#!/usr/bin/env bash
# Apply scripts/naming_renames.txt ("old new" a line, # comments) to the tracked
# text files of include/ src/ tests/ examples/ bench/ fuzz/ docs/ README.md
# (never results/ or scripts/), whole words only. Idempotent: no new name is
# an old one (checked below), so re-running it, or running it on a tree that
# gained code written against the old names, converges to the same result.
# Usage: bash scripts/apply_renames.sh [--check]   (--check: list files still
# using an old name and fail if any; changes nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
map=scripts/naming_renames.txt
mapfile -t pairs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$map")
declare -A new_of
sedargs=()
olds=()
for p in "${pairs[@]}"; do
  read -r o n extra <<<"$p"
  [[ -n "$o" && -n "$n" && -z "$extra" ]] || { echo "$map: bad line: $p" >&2; exit 2; }
  [[ "$o" =~ ^[A-Za-z_][A-Za-z0-9_]*$ && "$n" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
    { echo "$map: not identifiers: $p" >&2; exit 2; }
  [ -z "${new_of[$o]:-}" ] || { echo "$map: $o renamed twice" >&2; exit 2; }
  new_of[$o]=$n
  olds+=("$o")
  sedargs+=(-e "s/\\b$o\\b/$n/g")
done
for o in "${olds[@]}"; do # a chain (a -> b, b -> c) would not be idempotent
  n=${new_of[$o]}
  [ -z "${new_of[$n]:-}" ] || { echo "$map: $n is both a new and an old name" >&2; exit 2; }
done
pattern="\\b($(IFS='|'; echo "${olds[*]}"))\\b"
mapfile -t files < <(git ls-files -- include src tests examples bench fuzz docs README.md |
  grep -v '^results/' | while read -r f; do [ -f "$f" ] && grep -IlE "$pattern" "$f" || true; done)
if [ "${1:-}" = "--check" ]; then
  [ ${#files[@]} -eq 0 ] && { echo "no old names left"; exit 0; }
  printf '%s\n' "${files[@]}"; exit 1
fi
for f in "${files[@]}"; do sed -i -E "${sedargs[@]}" "$f"; done
echo "renamed in ${#files[@]} files (${#olds[@]} names in $map)"
