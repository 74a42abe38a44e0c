/* Hand-written SVG line charts; see svg_plot.h. */
#define _POSIX_C_SOURCE 200809L
#include "svg_plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Panel geometry (pixels): plot area inside each panel cell. */
enum { CELL_W = 460, CELL_H = 270, LEFT = 70, RIGHT = 20, TOP = 34, BOTTOM = 46, HEAD = 40 };

static const char *const colours[SVG_MAX_SERIES] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

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
static int panel_range(const svg_panel *p, int n, double *lo, double *hi, double *floor_v) {
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

static void draw_panel(FILE *f, const svg_panel *p, const char *x_label, const double *x, int n,
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

int svg_plot_write(const char *path, const char *title, const char *x_label, const double *x,
                   int n, const svg_panel *panels, int npanels) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp) return -1;
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return -1;
    }
    int rows = (npanels + 1) / 2;
    int W = 2 * CELL_W, H = HEAD + rows * CELL_H;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" "
            "fill=\"white\"/>\n<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">",
            W, H, W, H, W / 2);
    put_text(f, title);
    fprintf(f, "</text>\n");
    for (int i = 0; i < npanels; i++)
        draw_panel(f, &panels[i], x_label, x, n, (i % 2) * CELL_W, HEAD + (i / 2) * CELL_H);
    fprintf(f, "</svg>\n");
    int err = ferror(f);
    if (fclose(f) != 0 || err) {
        int e = errno ? errno : EIO;
        remove(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    int r = rename(tmp, path);
    if (r != 0) {
        int e = errno;
        remove(tmp);
        errno = e;
    }
    free(tmp);
    return r == 0 ? 0 : -1;
}
