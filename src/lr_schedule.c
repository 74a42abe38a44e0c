/* Learning-rate schedules: pure functions of the step (computed in double),
 * so resuming from a checkpoint needs only the optimizer's step count. */
#include "internal.h"

#include <math.h>

float eqr_lr_at(const eqr_lr_schedule *s, int64_t t) {
    if (!s) return 0.0f;
    if (t < 0) t = 0;
    double base = s->base_lr;
    int64_t w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    /* warm-up: base/w at t = 0 rising linearly to base at t = w - 1 */
    if (t < w) return (float)(base * (double)(t + 1) / (double)w);
    int64_t u = t - w; /* steps since warm-up ended */
    switch (s->kind) {
    case EQR_LR_CONSTANT:
        return (float)base;
    case EQR_LR_STEP:
        if (s->step_size <= 0) return (float)base;
        return (float)(base * pow((double)s->gamma, (double)(u / s->step_size)));
    case EQR_LR_COSINE: {
        double lo = s->min_lr;
        int64_t span = s->total_steps - w;
        if (span <= 0 || u >= span) return (float)lo;
        double c = cos(3.14159265358979323846 * (double)u / (double)span);
        return (float)(lo + (base - lo) * (1.0 + c) * 0.5);
    }
    }
    return (float)base;
}
