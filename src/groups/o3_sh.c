/* Real spherical harmonics of any degree in double, with their gradient,
 * by the Cartesian recursions of the solid harmonics (o3.h conventions). */
#include "groups/o3_internal.h"

#include <math.h>

typedef struct { double v, d[3]; } dual;

static dual d_lin(double a, dual p, double b, dual q) {
    dual o;
    o.v = a * p.v + b * q.v;
    for (int k = 0; k < 3; k++) o.d[k] = a * p.d[k] + b * q.d[k];
    return o;
}
static dual d_mul(dual p, dual q) {
    dual o;
    o.v = p.v * q.v;
    for (int k = 0; k < 3; k++) o.d[k] = p.d[k] * q.v + p.v * q.d[k];
    return o;
}

/* (x + i y)^m = C_m + i S_m; Q_l^m(z, r^2) the associated Legendre factor
 * (no Condon-Shortley phase): Q_m^m = (2m-1)!!, Q_{m+1}^m = (2m+1) z Q_m^m,
 * (l-m) Q_l^m = (2l-1) z Q_{l-1}^m - (l+m-1) r^2 Q_{l-2}^m. Then
 * Y_lm = sqrt(2l+1) sqrt((2 - [m=0]) (l-m)!/(l+m)!) Q_l^|m| (C_m or S_|m|). */
void eqr__o3_solid(int lmax, const double r[3], double *y, double *grad) {
    dual X = {r[0], {1, 0, 0}}, Y = {r[1], {0, 1, 0}}, Z = {r[2], {0, 0, 1}};
    dual R2 = d_lin(1, d_mul(X, X), 1, d_mul(Y, Y));
    R2 = d_lin(1, R2, 1, d_mul(Z, Z));
    dual C = {1, {0, 0, 0}}, S = {0, {0, 0, 0}};
    double dfact = 1; /* (2m-1)!! */
    for (int m = 0; m <= lmax; m++) {
        if (m > 0) {
            dual Cn = d_lin(1, d_mul(X, C), -1, d_mul(Y, S));
            dual Sn = d_lin(1, d_mul(X, S), 1, d_mul(Y, C));
            C = Cn;
            S = Sn;
            dfact *= 2 * m - 1;
        }
        dual q2 = {0, {0, 0, 0}}, q1 = {dfact, {0, 0, 0}};
        for (int l = m; l <= lmax; l++) {
            dual q;
            if (l == m) q = q1;
            else if (l == m + 1) q = d_lin(2 * m + 1, d_mul(Z, q1), 0, q1);
            else q = d_lin((2.0 * l - 1) / (l - m), d_mul(Z, q1), -(double)(l + m - 1) / (l - m),
                           d_mul(R2, q2));
            if (l > m) { q2 = q1; q1 = q; }
            double ratio = 1; /* (l-m)!/(l+m)! */
            for (int k = l - m + 1; k <= l + m; k++) ratio /= k;
            double nrm = sqrt((2.0 * l + 1) * (m ? 2.0 : 1.0) * ratio);
            int base = l * l;
            dual yc = d_mul(q, C);
            int pc = base + eqr__o3_pos(l, m);
            y[pc] = nrm * yc.v;
            if (grad)
                for (int k = 0; k < 3; k++) grad[3 * pc + k] = nrm * yc.d[k];
            if (m > 0) {
                dual ys = d_mul(q, S);
                int ps = base + eqr__o3_pos(l, -m);
                y[ps] = nrm * ys.v;
                if (grad)
                    for (int k = 0; k < 3; k++) grad[3 * ps + k] = nrm * ys.d[k];
            }
        }
    }
}

eqr_status eqr_o3_sh(eqr_ctx *ctx, int lmax, eqr_sh_norm norm, int normalize, const double r[3],
                     double *y, double *grad) {
    if (!ctx) return EQR_ERR_ARG;
    if (lmax < 0 || lmax > EQR_O3_LMAX || !r || !y || norm < EQR_SH_COMPONENT ||
        norm > EQR_SH_INTEGRAL)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_sh: lmax %d (0..%d), norm %d, r %p, y %p", lmax,
                         EQR_O3_LMAX, (int)norm, (const void *)r, (void *)y);
    int nd = eqr_sh_dim(lmax);
    double n2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
    if (normalize) {
        if (!(n2 > 0)) { /* r = 0: Y^0 only, zero gradient (a finite choice) */
            for (int i = 0; i < nd; i++) y[i] = 0;
            y[0] = 1;
            if (grad)
                for (int i = 0; i < 3 * nd; i++) grad[i] = 0;
        } else {
            double nr = sqrt(n2), u[3] = {r[0] / nr, r[1] / nr, r[2] / nr};
            eqr__o3_solid(lmax, u, y, grad);
            if (grad) /* dY/dr = (I - u u^T) dY/du / |r| */
                for (int i = 0; i < nd; i++) {
                    double *g = grad + 3 * i, dot = g[0] * u[0] + g[1] * u[1] + g[2] * u[2];
                    for (int k = 0; k < 3; k++) g[k] = (g[k] - dot * u[k]) / nr;
                }
        }
    } else {
        eqr__o3_solid(lmax, r, y, grad);
    }
    for (int l = 0; l <= lmax; l++) {
        double s = norm == EQR_SH_NORM ? 1 / sqrt(2.0 * l + 1)
                   : norm == EQR_SH_INTEGRAL ? 1 / sqrt(4 * 3.14159265358979323846) : 1;
        if (s == 1) continue;
        for (int i = l * l; i < (l + 1) * (l + 1); i++) {
            y[i] *= s;
            if (grad)
                for (int k = 0; k < 3; k++) grad[3 * i + k] *= s;
        }
    }
    return EQR_OK;
}
