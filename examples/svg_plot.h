/* Small hand-written SVG line charts for the example trainers: a figure of
 * panels (two per row), each with a few series over a shared x axis
 * (epochs), a linear or logarithmic y axis and a legend. No dependencies.
 * Non-finite values (NaN: not measured that epoch) are skipped and the line
 * joins the finite neighbours; on a log axis values <= 0 are drawn at the
 * smallest positive value of the panel. */
#ifndef SVG_PLOT_H
#define SVG_PLOT_H

#define SVG_MAX_SERIES 4

typedef struct svg_series {
    const char *label;
    const double *y; /* n values (the figure's x count) */
} svg_series;

typedef struct svg_panel {
    const char *title;
    int log_y;  /* 1: logarithmic y axis */
    int nseries; /* 1 .. SVG_MAX_SERIES */
    svg_series series[SVG_MAX_SERIES];
} svg_panel;

/* Write the figure to path: title on top, npanels panels over x[0..n-1]
 * (x_label under each panel). Writes path.tmp and renames it, so a reader
 * never sees half a file. Returns 0, or -1 with errno set (e.g. the
 * directory does not exist). n may be 0 (empty axes). */
int svg_plot_write(const char *path, const char *title, const char *x_label, const double *x,
                   int n, const svg_panel *panels, int npanels);

#endif
