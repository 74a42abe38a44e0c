/* SVG line charts of metrics tables (train.h eqr_metrics_write_svg): panels
 * two per row, a few series over a shared x column, a linear or logarithmic
 * y axis and a legend; written through the atomic writer. */
#include "core/internal.h"
#include "equirelax/train.h"
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>

/* A panel resolved to the table's columns. */
typedef struct plot_series {
    const char *label;
    const double *y;
} plot_series;
typedef struct plot_panel {
    const char *title;
    int log_y, nseries;
    plot_series series[EQR_PLOT_MAX_SERIES];
} plot_panel;

/* Panel geometry (pixels): plot area inside each panel cell. */
enum { CELL_W = 460, CELL_H = 270, LEFT = 70, RIGHT = 20, TOP = 34, BOTTOM = 46, HEAD = 40 };

static const char *const colours[EQR_PLOT_MAX_SERIES] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

/* Text with XML special characters escaped. */
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Value on the panel's y scale (log10 on a log axis, floored). */
static double scaled(double v, int log_y, double floor_v) {
    if (!log_y) return v;
    return log10(v > floor_v ? v : floor_v);
}

/* y range of a panel on its scale; returns 0 if it holds no finite value. */
static int panel_range(const plot_panel *p, int n, double *lo, double *hi, double *floor_v) {
    double mn = INFINITY, mx = -INFINITY, pos_min = INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < n; i++) {
            double v = p->series[s].y[i];
            if (!isfinite(v)) continue;
            if (v > 0 && v < pos_min) pos_min = v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
    if (!isfinite(mn)) return 0;
    *floor_v = isfinite(pos_min) ? pos_min : 1e-12;
    if (p->log_y) {
        mn = scaled(mn, 1, *floor_v);
        mx = scaled(mx, 1, *floor_v);
        mn = floor(mn);
        mx = ceil(mx);
        if (mx <= mn) mx = mn + 1;
    } else {
        double pad = (mx - mn) * 0.05;
        if (pad <= 0) pad = fabs(mx) > 0 ? fabs(mx) * 0.1 : 1.0;
        mn -= pad;
        mx += pad;
    }
    *lo = mn;
    *hi = mx;
    return 1;
}

static void draw_panel(FILE *f, const plot_panel *p, const char *x_label, const double *x, int n,
                       int ox, int oy) {
    const int pw = CELL_W - LEFT - RIGHT, ph = CELL_H - TOP - BOTTOM;
    const int x0 = ox + LEFT, y0 = oy + TOP;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">", x0, oy + 20);
    put_text(f, p->title);
    fprintf(f, "%s</text>\n", p->log_y ? " (log scale)" : "");
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#444\"/>\n",
            x0, y0, pw, ph);
    double xmin = n > 0 ? x[0] : 0, xmax = n > 0 ? x[n - 1] : 1;
    if (xmax <= xmin) xmax = xmin + 1;
    double lo = 0, hi = 1, floor_v = 1e-12;
    int has = panel_range(p, n, &lo, &hi, &floor_v);
    /* y ticks: 5 on a linear axis, one per decade on a log axis. */
    int nt = p->log_y ? (int)(hi - lo) : 4;
    if (nt < 1) nt = 1;
    int step = p->log_y && nt > 8 ? (nt + 7) / 8 : 1;
    for (int t = 0; t <= nt; t += step) {
        double v = lo + (hi - lo) * t / nt;
        double py = y0 + ph - (v - lo) / (hi - lo) * ph;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, py,
                x0 + pw, py);
        if (p->log_y)
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", x0 - 6,
                    py + 4, (int)lround(v));
        else
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", x0 - 6,
                    py + 4, fabs(v) < 1e-12 * (hi - lo) ? 0.0 : v);
    }
    /* x ticks: every point up to 12 points, else about 10. */
    int xs = n <= 12 ? 1 : (n + 9) / 10;
    for (int i = 0; i < n; i += xs) {
        double px = x0 + (x[i] - xmin) / (xmax - xmin) * pw;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px,
                y0 + ph + 16, x[i]);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", x0 + pw / 2, y0 + ph + 34);
    put_text(f, x_label);
    fprintf(f, "</text>\n");
    if (!has) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
                x0 + pw / 2, y0 + ph / 2);
        return;
    }
    for (int s = 0; s < p->nseries; s++) {
        const double *y = p->series[s].y;
        const char *c = colours[s];
        int open = 0;
        for (int i = 0; i < n; i++) {
            if (!isfinite(y[i])) continue; /* skipped: the line joins its neighbours */
            double px = x0 + (x[i] - xmin) / (xmax - xmin) * pw;
            double py = y0 + ph - (scaled(y[i], p->log_y, floor_v) - lo) / (hi - lo) * ph;
            if (!open)
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
            fprintf(f, "%.1f,%.1f ", px, py);
            open = 1;
        }
        if (open) fprintf(f, "\"/>\n");
        for (int i = 0; i < n; i++) {
            if (!isfinite(y[i])) continue;
            double px = x0 + (x[i] - xmin) / (xmax - xmin) * pw;
            double py = y0 + ph - (scaled(y[i], p->log_y, floor_v) - lo) / (hi - lo) * ph;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px, py, c);
        }
        /* Legend, top right inside the plot area. */
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"%s\">", x0 + pw - 6,
                y0 + 16 + 15 * s, c);
        put_text(f, p->series[s].label);
        fprintf(f, "</text>\n");
    }
}

typedef struct plot_job {
    const char *title, *x_label;
    const double *x;
    int n, npanels;
    const plot_panel *panels;
} plot_job;

static int write_svg(FILE *f, void *user) {
    const plot_job *j = user;
    int rows = (j->npanels + 1) / 2;
    int W = 2 * CELL_W, H = HEAD + rows * CELL_H;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" "
            "fill=\"white\"/>\n<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">",
            W, H, W, H, W / 2);
    put_text(f, j->title);
    fprintf(f, "</text>\n");
    for (int i = 0; i < j->npanels; i++)
        draw_panel(f, &j->panels[i], j->x_label, j->x, j->n, (i % 2) * CELL_W,
                   HEAD + (i / 2) * CELL_H);
    return fprintf(f, "</svg>\n") < 0 ? -1 : 0;
}

eqr_status eqr_metrics_write_svg(eqr_ctx *ctx, const eqr_metrics *m, const char *path,
                                 const char *title, const char *x_col,
                                 const eqr_plot_panel *panels, int npanels) {
    static const char *fn = "eqr_metrics_write_svg";
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 4, m, path, x_col, panels)) return ctx->status;
    if (npanels < 1 || npanels > 16)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: npanels must be in [1, 16], got %d", fn, npanels);
    int xc = eqr_metrics_find(m, x_col);
    if (xc < 0) return eqr__fail(ctx, EQR_ERR_ARG, "%s: no column '%s'", fn, x_col);
    int64_t n = eqr_metrics_num_rows(m);
    if (n > (int64_t)1 << 24) return eqr__fail(ctx, EQR_ERR_ARG, "%s: too many rows to plot", fn);
    int ncols = 1;
    for (int i = 0; i < npanels; i++)
        for (int s = 0; s < EQR_PLOT_MAX_SERIES && panels[i].cols[s]; s++) ncols++;
    double *buf = malloc((size_t)(ncols * (n > 0 ? n : 1)) * sizeof(double));
    plot_panel *pp = calloc((size_t)npanels, sizeof *pp);
    if (!buf || !pp) {
        free(buf);
        free(pp);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    }
    eqr_status st = EQR_OK;
    double *next = buf;
    const double *x = eqr__metrics_col_values(m, xc, next);
    next += n;
    for (int i = 0; i < npanels && st == EQR_OK; i++) {
        pp[i].title = panels[i].title ? panels[i].title : "";
        pp[i].log_y = panels[i].log_y;
        for (int s = 0; s < EQR_PLOT_MAX_SERIES && panels[i].cols[s]; s++) {
            int c = eqr_metrics_find(m, panels[i].cols[s]);
            if (c < 0) {
                st = eqr__fail(ctx, EQR_ERR_ARG, "%s: panel '%s': no column '%s'", fn,
                               pp[i].title, panels[i].cols[s]);
                break;
            }
            pp[i].series[s].label = panels[i].labels[s] ? panels[i].labels[s] : panels[i].cols[s];
            pp[i].series[s].y = eqr__metrics_col_values(m, c, next);
            next += n;
            pp[i].nseries = s + 1;
        }
    }
    if (st == EQR_OK) {
        plot_job j = {title ? title : "", x_col, x, (int)n, npanels, pp};
        st = eqr__write_atomic(ctx, fn, path, write_svg, &j);
    }
    free(buf);
    free(pp);
    return st;
}
