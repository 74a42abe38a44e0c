#!/bin/sh
# The C block of a doc must be the example file verbatim (the tutorial's
# code is compiled and tested as the example). Usage: doc_verbatim.sh DOC FILE
awk '/^```c$/{f=1; next} /^```$/{f=0} f' "$1" | diff -u "$2" - >/dev/null && exit 0
echo "FAIL: the code block of $1 differs from $2:"
awk '/^```c$/{f=1; next} /^```$/{f=0} f' "$1" | diff -u "$2" - | head -20
exit 1
