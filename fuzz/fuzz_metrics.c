/* libFuzzer harness for eqr_metrics_read_csv (train.h): the input is the
 * file, read into a 3-column table ("step", "loss", "theta") that is empty
 * and into one that holds two rows. Invariants: a failure has a non-OK
 * status and a message and leaves the table as it was (rows and every
 * value, bitwise); a success holds exactly one row per line after the
 * header, each value what strtod makes of its field (NaN for an empty one),
 * which is checked against a reference reader of the format the writer
 * produces: a header line, then lines of ncols comma-separated fields, each
 * ending in '\n', no NUL bytes, each non-empty field a whole number strtod
 * accepts with nothing before or after it. */
#include "fuzz_common.h"
#include <equirelax/train.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NC 3
static const char *const g_names[NC] = {"step", "loss", "theta"};
static eqr_ctx *g_ctx;
static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_ctx = fuzz_ctx_new();
    fuzz_path(g_path, sizeof g_path, "metrics");
    return 0;
}

static void die(const char *what) { fuzz_fail("fuzz_metrics", g_ctx, what); }

/* Reference reader: the number of rows (values in *out, malloc'd), or -1
 * if d[0..n) is not a table of the format above. */
static int64_t reference(const uint8_t *d, size_t n, double **out) {
    *out = NULL;
    if (memchr(d, 0, n)) return -1;
    const char *hdr = "step,loss,theta\n";
    size_t hl = strlen(hdr);
    if (n < hl || memcmp(d, hdr, hl) != 0) return -1;
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, d, n);
    s[n] = '\0';
    int64_t rows = 0;
    for (size_t i = hl; i < n; i++) rows += s[i] == '\n';
    if (n > hl && s[n - 1] != '\n') {
        free(s);
        return -1;
    }
    double *v = malloc((size_t)(rows ? rows : 1) * NC * sizeof *v);
    if (!v) abort();
    char *p = s + hl;
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < NC; c++) {
            char sep = c + 1 < NC ? ',' : '\n';
            char *end = p;
            if (*p == sep) {
                v[r * NC + c] = NAN;
            } else {
                if (isspace((unsigned char)*p)) goto bad;
                v[r * NC + c] = strtod(p, &end);
                if (end == p || *end != sep) goto bad;
            }
            p = end + 1;
        }
    free(s);
    *out = v;
    return rows;
bad:
    free(s);
    free(v);
    return -1;
}

static void one(const uint8_t *data, size_t size, int prefill) {
    eqr_error_clear(g_ctx);
    eqr_metrics *m = eqr_metrics_create(g_ctx, NC, g_names);
    if (!m) die("create failed");
    double before[2][NC] = {{1, 2.5, NAN}, {2, -1e300, 0.125}};
    for (int r = 0; r < prefill; r++)
        if (eqr_metrics_add_row(g_ctx, m, before[r]) != EQR_OK) die("add_row failed");
    eqr_status st = eqr_metrics_read_csv(g_ctx, m, g_path);
    double *ref;
    int64_t rows = reference(data, size, &ref);
    if (st != EQR_OK) {
        if (!eqr_error_message(g_ctx)[0] || eqr_error_status(g_ctx) != st) die("error without a message");
        if (rows >= 0) die("a well-formed table was refused");
        if (eqr_metrics_num_rows(m) != prefill) die("a failed read changed the row count");
        for (int r = 0; r < prefill; r++)
            for (int c = 0; c < NC; c++) {
                double x = eqr_metrics_at(m, r, c);
                if (memcmp(&x, &before[r][c], sizeof x)) die("a failed read changed a value");
            }
    } else {
        if (rows < 0) die("a malformed table was accepted");
        if (eqr_metrics_num_rows(m) != rows) die("row count differs from the lines in the file");
        for (int64_t r = 0; r < rows; r++)
            for (int c = 0; c < NC; c++) {
                double x = eqr_metrics_at(m, r, c), y = ref[r * NC + c];
                if (memcmp(&x, &y, sizeof x) && !(isnan(x) && isnan(y))) die("a value differs");
            }
    }
    free(ref);
    eqr_metrics_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    one(data, size, 0);
    one(data, size, 2);
    unlink(g_path);
    return 0;
}
