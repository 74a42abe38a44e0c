/* Metrics tables (train.h): named columns of doubles, written as CSV through
 * the atomic writer and read back on resume. */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"
#include "equirelax/train.h"
#include "train/train_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

struct eqr_metrics {
    int ncols;
    char **names;
    double *v; /* rows * ncols, row-major */
    int64_t rows, cap;
};

static int name_ok(const char *s) {
    if (!s || !*s || strlen(s) >= EQR_NAME_LEN * 2) return 0;
    return strpbrk(s, ",\"\r\n") == NULL;
}

eqr_metrics *eqr_metrics_create(eqr_ctx *ctx, int ncols, const char *const *names) {
    static const char *fn = "eqr_metrics_create";
    if (!eqr__ok(ctx, 1, names)) return NULL;
    if (ncols < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: need at least one column, got %d", fn, ncols);
        return NULL;
    }
    for (int c = 0; c < ncols; c++) {
        if (!name_ok(names[c])) {
            eqr__fail(ctx, EQR_ERR_ARG,
                      "%s: column %d name '%s' is empty, too long or holds a comma, quote or "
                      "line break", fn, c, names[c] ? names[c] : "(null)");
            return NULL;
        }
        for (int d = 0; d < c; d++)
            if (!strcmp(names[c], names[d])) {
                eqr__fail(ctx, EQR_ERR_ARG, "%s: column '%s' named twice", fn, names[c]);
                return NULL;
            }
    }
    eqr_metrics *m = calloc(1, sizeof *m);
    if (m) m->names = calloc((size_t)ncols, sizeof *m->names);
    for (int c = 0; m && m->names && c < ncols; c++) {
        m->names[c] = strdup(names[c]);
        if (!m->names[c]) break;
        m->ncols = c + 1;
    }
    if (!m || !m->names || m->ncols != ncols) {
        eqr_metrics_destroy(m);
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    return m;
}

void eqr_metrics_destroy(eqr_metrics *m) {
    if (!m) return;
    for (int c = 0; m->names && c < m->ncols; c++) free(m->names[c]);
    free(m->names);
    free(m->v);
    free(m);
}

int eqr_metrics_num_cols(const eqr_metrics *m) { return m ? m->ncols : 0; }
int64_t eqr_metrics_num_rows(const eqr_metrics *m) { return m ? m->rows : 0; }

const char *eqr_metrics_col_name(const eqr_metrics *m, int col) {
    return m && col >= 0 && col < m->ncols ? m->names[col] : NULL;
}

int eqr_metrics_find(const eqr_metrics *m, const char *name) {
    for (int c = 0; m && name && c < m->ncols; c++)
        if (!strcmp(m->names[c], name)) return c;
    return -1;
}

double eqr_metrics_at(const eqr_metrics *m, int64_t row, int col) {
    if (!m || row < 0 || row >= m->rows || col < 0 || col >= m->ncols) return NAN;
    return m->v[row * m->ncols + col];
}

const double *eqr__metrics_col_values(const eqr_metrics *m, int col, double *scratch) {
    for (int64_t r = 0; r < m->rows; r++) scratch[r] = m->v[r * m->ncols + col];
    return scratch;
}

void eqr_metrics_truncate(eqr_metrics *m, int64_t rows) {
    if (m && rows >= 0 && rows < m->rows) m->rows = rows;
}

/* Room for one more row; 0 with the error recorded. */
static int reserve(eqr_ctx *ctx, const char *fn, eqr_metrics *m, int64_t rows) {
    if (rows <= m->cap) return 1;
    int64_t cap = m->cap ? m->cap : 64;
    while (cap < rows) cap *= 2;
    double *v = realloc(m->v, (size_t)(cap * m->ncols) * sizeof(double));
    if (!v) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot grow the table to %lld rows", fn,
                  (long long)cap);
        return 0;
    }
    m->v = v;
    m->cap = cap;
    return 1;
}

eqr_status eqr_metrics_add_row(eqr_ctx *ctx, eqr_metrics *m, const double *values) {
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 2, m, values)) return ctx->status;
    if (!reserve(ctx, __func__, m, m->rows + 1)) return ctx->status;
    memcpy(m->v + m->rows * m->ncols, values, (size_t)m->ncols * sizeof(double));
    m->rows++;
    return EQR_OK;
}

static int write_csv(FILE *f, void *user) {
    const eqr_metrics *m = user;
    for (int c = 0; c < m->ncols; c++)
        if (fprintf(f, "%s%s", m->names[c], c + 1 < m->ncols ? "," : "\n") < 0) return -1;
    for (int64_t r = 0; r < m->rows; r++)
        for (int c = 0; c < m->ncols; c++) {
            double x = m->v[r * m->ncols + c];
            if (!isnan(x) && fprintf(f, "%.9g", x) < 0) return -1;
            if (fputs(c + 1 < m->ncols ? "," : "\n", f) < 0) return -1;
        }
    return 0;
}

eqr_status eqr_metrics_write_csv(eqr_ctx *ctx, const eqr_metrics *m, const char *path) {
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 2, m, path)) return ctx->status;
    return eqr__write_atomic(ctx, __func__, path, write_csv, (void *)m);
}

eqr_status eqr_metrics_read_csv(eqr_ctx *ctx, eqr_metrics *m, const char *path) {
    static const char *fn = "eqr_metrics_read_csv";
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 2, m, path)) return ctx->status;
    uint8_t *raw = NULL;
    size_t len = 0;
    if (eqr__slurp(ctx, fn, path, &raw, &len) != EQR_OK) return ctx->status;
    char *buf = (char *)raw;
    eqr_status st = EQR_OK;
    if (strlen(buf) != len) {
        free(buf);
        return eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' holds a NUL byte: not a CSV table", fn,
                         path);
    }
    /* header */
    char *p = buf, *eol = strchr(p, '\n');
    size_t hl = eol ? (size_t)(eol - p) : strlen(p);
    size_t want = 0;
    for (int c = 0; c < m->ncols; c++) want += strlen(m->names[c]) + 1;
    int ok = eol && hl + 1 == want;
    for (int c = 0, at = 0; ok && c < m->ncols; c++) {
        size_t n = strlen(m->names[c]);
        ok = !strncmp(p + at, m->names[c], n) &&
             (c + 1 < m->ncols ? p[at + n] == ',' : (size_t)at + n == hl);
        at += (int)n + 1;
    }
    if (!ok) {
        free(buf);
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' does not start with this table's header (%d columns from "
                         "'%s')", fn, path, m->ncols, m->names[0]);
    }
    /* rows: count first, so the table changes only on success */
    int64_t nrows = 0;
    for (char *q = eol ? eol + 1 : p + hl; *q; q++)
        if (*q == '\n') nrows++;
    double *v = malloc((size_t)((nrows > 0 ? nrows : 1) * m->ncols) * sizeof(double));
    if (!v) {
        free(buf);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    }
    int64_t r = 0;
    p = eol ? eol + 1 : p + hl;
    while (*p && r < nrows) {
        for (int c = 0; c < m->ncols; c++) {
            char *end;
            if (*p == ',' || *p == '\n') {
                v[r * m->ncols + c] = NAN;
                end = p;
            } else if (isspace((unsigned char)*p)) {
                end = p; /* strtod would skip it, even a line break */
            } else {
                v[r * m->ncols + c] = strtod(p, &end);
            }
            char sep = c + 1 < m->ncols ? ',' : '\n';
            if (end == p && *p != sep) {
                st = eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' line %lld, column %d: not a number",
                               fn, path, (long long)r + 2, c + 1);
                goto done;
            }
            if (*end != sep) {
                st = eqr__fail(ctx, EQR_ERR_FORMAT,
                               "%s: '%s' line %lld: expected %d comma-separated values", fn, path,
                               (long long)r + 2, m->ncols);
                goto done;
            }
            p = end + 1;
        }
        r++;
    }
    if (*p) { /* text after the last line break: a cut or foreign file */
        st = eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' line %lld does not end in a line break",
                       fn, path, (long long)r + 2);
        goto done;
    }
    if (!reserve(ctx, fn, m, r)) {
        st = ctx->status;
        goto done;
    }
    if (r) memcpy(m->v, v, (size_t)(r * m->ncols) * sizeof(double)); /* m->v may be NULL */
    m->rows = r;
done:
    free(v);
    free(buf);
    return st;
}
