#!/usr/bin/env bash
# Check the public names of include/equirelax/*.h against the "Naming" rules
# of docs/design.md; print every offending name with its rule and fail.
#   1 object first: eqr_<object>_<verb>; no function starts with a verb of
#     the list below (tensor ops such as eqr_add, eqr_relu are named by the op).
#   2 counts: eqr_<object>_num_<plural> (EQR_..._NUM_... for constants); the
#     words count, total, size, len, numel (and a trailing num) are not used
#     for counts (kernel_size, a spatial extent, is not a count).
#   3 _get_: only as eqr_<object>_get_<x> where eqr_<object>_<x> is a type;
#     other accessors are the bare noun, lookups by index/key are _at.
#   4 lifecycle: _create/_destroy for what the library allocates, _init (or
#     _load/_read/_generate)/_free for a caller's struct; never new, make,
#     alloc, delete, release; an object does not mix the two pairs.
#   5 setters: eqr_<object>_set_<x>; never put.
# Usage: bash scripts/check_names.sh [headers...]  (default include/equirelax/*.h)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- include/equirelax/*.h
src=$(perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' "$@")
funcs=$(grep -oE '\beqr_[a-z0-9_]+[[:space:]]*\(' <<<"$src" | sed -E 's/[[:space:]]*\($//' | sort -u)
types=$( { grep -oE '\b(struct|enum)[[:space:]]+eqr_[a-z0-9_]+' <<<"$src" | awk '{print $2}'
           grep -oE '\beqr_[a-z0-9_]+[[:space:]]*;' <<<"$src" | sed -E 's/[[:space:]]*;$//'
           grep -oE '\(\*[[:space:]]*eqr_[a-z0-9_]+\)' <<<"$src" | tr -d '(*) '
           grep -oE '\}[[:space:]]*eqr_[a-z0-9_]+[[:space:]]*;' <<<"$src" | tr -d '}; ' ; } | sort -u)
consts=$(grep -oE '\bEQR_[A-Z0-9_]+' <<<"$src" | sort -u)
names=$(sort -u <<<"$funcs"$'\n'"$types")
bad=0
fail() { echo "$1: $2"; bad=1; }
is_type() { grep -qxF "$1" <<<"$types"; }
has_func() { grep -qxF "$1" <<<"$funcs"; }
verbs="get set clear zero clip init create destroy free new make load save read write act compute reset put delete release alloc"
count_words="count total size len numel"
for n in $names; do
  rest=${n#eqr_}
  IFS=_ read -r -a w <<<"$rest"
  if grep -qxF "$n" <<<"$funcs"; then # types may start with a noun such as load (eqr_load_opts)
    for v in $verbs; do
      [ "${w[0]}" = "$v" ] && fail "$n" "verb first (rule 1: eqr_<object>_$v)"
    done
  fi
  for ((i = 0; i < ${#w[@]}; i++)); do
    x=${w[$i]}
    for c in $count_words; do
      if [ "$x" = "$c" ]; then
        [ "$x" = size ] && [ "$i" -gt 0 ] && [ "${w[$((i - 1))]}" = kernel ] && continue
        fail "$n" "count word '$c' (rule 2: num_<plural>)"
      fi
    done
    [ "$x" = num ] && [ "$i" -eq $((${#w[@]} - 1)) ] && fail "$n" "trailing num (rule 2: num_<plural>)"
    case "$x" in
      new | make | alloc | delete | release) fail "$n" "'$x' (rule 4: _create/_destroy or _init/_free)" ;;
      put) fail "$n" "'put' (rule 5: _set_)" ;;
    esac
  done
  if [[ "$n" == *_get ]]; then fail "$n" "trailing _get (rule 3: the bare noun, or _at for a lookup)"; fi
  if [[ "$n" == *_get_* ]]; then
    bare=${n/_get_/_}
    is_type "$bare" || fail "$n" "_get_ but $bare is not a type (rule 3: name it $bare)"
  fi
done
for n in $funcs; do
  case "$n" in
    *_free) o=${n%_free}; has_func "${o}_create" && fail "$n" "${o}_create is paired with _destroy (rule 4)" ;;
    *_destroy) o=${n%_destroy}; has_func "${o}_init" && fail "$n" "${o}_init is paired with _free (rule 4)" ;;
  esac
done
for k in $consts; do
  IFS=_ read -r -a w <<<"${k#EQR_}"
  for x in "${w[@]}"; do
    case "$x" in
      COUNT | TOTAL | SIZE | LEN | NUMEL) fail "$k" "count word '$x' (rule 2: _NUM_)" ;;
    esac
  done
done
if [ "$bad" = 0 ]; then
  echo "names: $(wc -w <<<"$funcs") functions, $(wc -w <<<"$types") types, $(wc -w <<<"$consts") constants follow docs/design.md#naming"
fi
exit "$bad"
