/* xoshiro256** seeded through splitmix64: small, fast, portable. */
#include "core/internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void eqr_rng_seed(eqr_rng *rng, uint64_t seed) {
    if (!rng) return;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eqr_rng_u64(eqr_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float eqr_rng_uniform(eqr_rng *r) {
    /* 24 high bits -> exactly representable float in [0,1) */
    return (float)(eqr_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float eqr_rng_normal(eqr_rng *r) {
    double u1 = ((double)(eqr_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0,1] */
    double u2 = (double)(eqr_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t eqr_rng_below(eqr_rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* rejection sampling removes modulo bias */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = eqr_rng_u64(r);
    while (x >= lim);
    return x % n;
}
