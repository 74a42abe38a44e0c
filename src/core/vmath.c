/* Vectorisable elementwise math (internal.h). */
#include "core/internal.h"

#include <string.h>

/* exp(z) for z in [-87, 89] without calls or branches, so that the loops
 * calling it vectorise: z = k ln2 + r with k the nearest integer to z/ln2
 * (rounded by adding and removing 1.5 * 2^23) and |r| <= ln2/2, split as
 * ln2 = hi + lo with hi exact in k hi; exp(r) by its Taylor series to r^7
 * (truncation r^8/8! <= 5.2e-9 relative); 2^k built in the exponent bits
 * (k + 127 in [1, 255]: a normal float, or infinity above z = 88.7 where
 * exp(z) overflows anyway). */
static inline float exp_clamped(float z) {
    const float magic = 12582912.0f;
    const float k = (z * 1.44269504088896341f + magic) - magic;
    const float r = (z - k * 0.693145751953125f) - k * 1.42860682030941723e-6f;
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 +
                    r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    const uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

void eqr__sigmoid_n(const float *restrict x, float *restrict s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float z = -x[i];
        z = z < -87.0f ? -87.0f : z;
        z = z > 89.0f ? 89.0f : z;
        s[i] = 1.0f / (1.0f + exp_clamped(z));
    }
}
