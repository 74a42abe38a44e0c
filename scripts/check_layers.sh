#!/usr/bin/env bash
# Fail on an include that points up or across the library's layers: every
# #include "..." of src/<layer>/ and of each layer's public headers must name
# its own layer or one of the DEPS that src/layers.cmake gives it (the build
# enforces the same through per-layer include paths; this names the line).
# Also checks that each layer's DEPS are layers declared before it (no cycle)
# and closed (a layer may use what its dependencies use), and that every
# public header belongs to exactly one layer.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A deps hdr_layer seen
order=()
while read -r line; do
  name=$(sed -E 's/^eqr_layer\(([a-z0-9_]+).*/\1/' <<<"$line")
  d=$(sed -E 's/.*DEPS(.*)HEADERS.*/\1/' <<<"$line" | xargs)
  h=$(sed -E 's/.*HEADERS(.*)\).*/\1/' <<<"$line" | xargs)
  for x in $d; do
    [ -n "${seen[$x]:-}" ] || { echo "src/layers.cmake: layer $name depends on $x, not declared before it"; exit 1; }
  done
  for x in $d; do # closed: what a dependency may use, its user may too
    for y in ${deps[$x]}; do
      grep -qw "$y" <<<"$d" || { echo "src/layers.cmake: layer $name uses $x, which uses $y: add $y to its DEPS"; exit 1; }
    done
  done
  deps[$name]="$d"; seen[$name]=1; order+=("$name")
  for x in $h; do
    [ -z "${hdr_layer[$x]:-}" ] || { echo "src/layers.cmake: $x is in layers ${hdr_layer[$x]} and $name"; exit 1; }
    hdr_layer[$x]=$name
  done
done < <(grep '^eqr_layer(' src/layers.cmake)

bad=0
allowed() { # layer target
  [ "$1" = "$2" ] && return 0
  for x in ${deps[$1]}; do [ "$x" = "$2" ] && return 0; done
  return 1
}
check_file() { # file layer public(0/1)
  local f=$1 L=$2 pub=$3 n inc tl
  while IFS=: read -r n inc; do
    inc=${inc#*\"}; inc=${inc%%\"*}
    if [ "$pub" = 1 ]; then inc="equirelax/$inc"; fi
    case "$inc" in
      equirelax/equirelax.h) echo "$f:$n: includes the umbrella header (only for users)"; bad=1; continue ;;
      equirelax/*) tl=${hdr_layer[${inc#equirelax/}]:-} ;;
      */*) tl=${inc%%/*}; [ -n "${seen[$tl]:-}" ] || tl="" ;;
      *) continue ;; # a header next to the file
    esac
    if [ -z "$tl" ]; then echo "$f:$n: includes $inc, which belongs to no layer"; bad=1
    elif ! allowed "$L" "$tl"; then
      echo "$f:$n: layer $L includes $inc of layer $tl (it may include: $L ${deps[$L]})"; bad=1
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | sed 's/:.*#[[:space:]]*include/:/' || true)
}
for d in src/*/; do
  L=$(basename "$d")
  [ -n "${seen[$L]:-}" ] || { echo "$d: folder is not a layer of src/layers.cmake"; bad=1; continue; }
  while read -r f; do check_file "$f" "$L" 0; done < <(find "$d" -name '*.[ch]')
done
for f in include/equirelax/*.h; do
  h=$(basename "$f")
  [ "$h" = equirelax.h ] && continue
  L=${hdr_layer[$h]:-}
  [ -n "$L" ] || { echo "$f: public header in no layer of src/layers.cmake"; bad=1; continue; }
  check_file "$f" "$L" 1
done
[ "$bad" = 0 ] && echo "layers: ${order[*]}: no upward include"
exit $bad
