/* libFuzzer harness for the irreps string parser eqr_irreps_parse (the
 * input, cut at its first NUL, is the string). Invariants: a failure is
 * EQR_ERR_ARG with a message and leaves *out untouched; a success gives at
 * most EQR_IRREPS_MAX entries with mul >= 0, 0 <= l <= EQR_O3_LMAX, p = +-1,
 * prints (eqr_irreps_str) to a string that parses back to the same value,
 * truncates consistently into small buffers, and goes through simplify and
 * sort (UBSan watches their arithmetic) to values with the same totals. */
#include "fuzz_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static eqr_ctx *g_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_ctx = fuzz_ctx_new();
    return 0;
}

static void die(const char *what, const char *s) {
    fprintf(stderr, "fuzz_irreps: %s (input \"%s\", message '%s')\n", what, s,
            eqr_error_message(g_ctx));
    abort();
}

static int64_t dim_of(const eqr_irreps *r) {
    int64_t d = 0;
    for (int k = 0; k < r->n; k++) d += (int64_t)r->e[k].mul * (2 * r->e[k].l + 1);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    eqr_error_clear(g_ctx);
    eqr_irreps r, sentinel;
    memset(&r, 0x5A, sizeof r);
    sentinel = r;
    eqr_status st = eqr_irreps_parse(g_ctx, s, &r);
    if (st != EQR_OK) {
        if (st != EQR_ERR_ARG) die("failure is not EQR_ERR_ARG", s);
        if (!eqr_error_message(g_ctx)[0]) die("error without a message", s);
        if (memcmp(&r, &sentinel, sizeof r) != 0) die("failed parse wrote *out", s);
        free(s);
        return 0;
    }
    if (r.n < 0 || r.n > EQR_IRREPS_MAX) die("entry count out of range", s);
    for (int k = 0; k < r.n; k++)
        if (r.e[k].mul < 0 || r.e[k].l < 0 || r.e[k].l > EQR_O3_LMAX ||
            (r.e[k].p != 1 && r.e[k].p != -1))
            die("entry out of range", s);
    if (eqr_irreps_dim(&r) != dim_of(&r)) die("dim is not sum mul (2l+1)", s);

    /* round trip through the printer */
    int len = eqr_irreps_str(&r, NULL, 0);
    char *p = malloc((size_t)len + 1);
    if (!p) abort();
    if (eqr_irreps_str(&r, p, (size_t)len + 1) != len || strlen(p) != (size_t)len)
        die("printed length differs from the returned one", s);
    eqr_irreps back;
    if (eqr_irreps_parse(g_ctx, p, &back) != EQR_OK || !eqr_irreps_equal(&r, &back))
        die("printed form does not parse back to the same value", s);
    for (size_t n = 1; n <= (size_t)len && n < 40; n++) {
        char small[40];
        memset(small, 'X', sizeof small);
        if (eqr_irreps_str(&r, small, n) != len) die("truncated print returns another length", s);
        if (strlen(small) != n - 1 || memcmp(small, p, n - 1) != 0)
            die("truncated print is not a terminated prefix", s);
    }
    free(p);

    eqr_irreps simp, sorted;
    int perm[EQR_IRREPS_MAX];
    eqr_irreps_simplify(&r, &simp);
    if (eqr_irreps_dim(&simp) != dim_of(&r) || eqr_irreps_num_irreps(&simp) != eqr_irreps_num_irreps(&r))
        die("simplify changed the dimension or multiplicity", s);
    for (int k = 0; k < simp.n; k++)
        if (simp.e[k].mul <= 0) die("simplify kept an empty entry", s);
    eqr_irreps_sort(&r, &sorted, perm);
    if (sorted.n != r.n || eqr_irreps_dim(&sorted) != dim_of(&r)) die("sort changed the value", s);
    for (int k = 0; k < r.n; k++)
        if (perm[k] < 0 || perm[k] >= r.n || !eqr_irreps_equal(&(eqr_irreps){1, {r.e[perm[k]]}},
                                                               &(eqr_irreps){1, {sorted.e[k]}}))
            die("sort permutation does not map entries", s);
    free(s);
    return 0;
}
