/* Allocation-failure injection. Linked with -Wl,--wrap for every allocation
 * function the library calls (malloc, calloc, realloc, aligned_alloc, strdup,
 * free; posix_memalign is wrapped too in case it appears), so every allocation of
 * the static library and of this file goes through the counters below;
 * allocations inside shared libraries (libc's stdio, zlib, OpenBLAS) do not.
 * While armed, the N-th allocation fails (one-shot), or every allocation
 * from the N-th on (sticky: memory stays exhausted, so error paths that
 * allocate are tried too). For every N until the operation runs without an
 * injected failure: model construction (a small relaxed C4 model), one cold
 * training step (forward, backward, Adam step), checkpoint save and load.
 * Each run must end in success or in a non-OK status with a message, and
 * after destroying everything exactly the allocations live before remain
 * (a table of live pointers names the leak by its sequence number). A failed
 * step must leave the model trainable (a retried step gives the parameters
 * of a clean step), a failed save the file on disk unchanged and no
 * temporary beside it, a failed load the parameters, optimizer and counters
 * unchanged. IDX datasets (plain and gzip) and metrics tables (create,
 * write, read) are run the same way. Under
 * AddressSanitizer the wrappers forward to ASan's allocator, so the test
 * runs there too (and LeakSanitizer watches the wrappers' own view). */
#include "testutil.h"

#include <equirelax/train.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void __real_free(void *p);

/* ------------------------------------------------------------ injection */

static long g_calls;   /* allocation calls while armed */
static long g_fail_at; /* 1-based call to fail; 0 = none */
static int g_sticky;   /* fail every call from g_fail_at on */
static int g_armed;
static long g_failed;  /* failures injected since arming */
static long g_seq;     /* sequence number of every successful allocation */

/* Live pointers: open addressing, deleted slots marked by TOMB. */
#define LIVE_SLOTS (1 << 16)
#define TOMB ((void *)1)
static void *g_ptr[LIVE_SLOTS];
static long g_pseq[LIVE_SLOTS];
static long g_live;

static size_t slot_of(const void *p) {
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 48) & (LIVE_SLOTS - 1);
}
static void live_add(void *p) {
    if (!p) return;
    if (g_live >= LIVE_SLOTS / 2) abort(); /* table too small for this test */
    size_t i = slot_of(p);
    while (g_ptr[i] && g_ptr[i] != TOMB) i = (i + 1) & (LIVE_SLOTS - 1);
    g_ptr[i] = p;
    g_pseq[i] = ++g_seq;
    g_live++;
}
/* 0 if p was not allocated through the wrappers */
static int live_del(void *p) {
    size_t i = slot_of(p);
    while (g_ptr[i]) {
        if (g_ptr[i] == p) {
            g_ptr[i] = TOMB;
            g_live--;
            return 1;
        }
        i = (i + 1) & (LIVE_SLOTS - 1);
    }
    return 0;
}
static long g_foreign_frees; /* frees of pointers the wrappers did not see */

static int inject(void) {
    if (!g_armed) return 0;
    long k = ++g_calls;
    if (g_fail_at && (k == g_fail_at || (g_sticky && k > g_fail_at))) {
        g_failed++;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n) {
    if (inject()) return NULL;
    void *p = __real_malloc(n);
    live_add(p);
    return p;
}
void *__wrap_calloc(size_t k, size_t n) {
    if (inject()) return NULL;
    void *p = __real_calloc(k, n);
    live_add(p);
    return p;
}
void *__wrap_realloc(void *p, size_t n) {
    if (inject()) return NULL;
    if (p && n == 0) abort(); /* realloc(p, 0) is not used; its meaning varies */
    void *q = __real_realloc(p, n);
    if (q) {
        if (p && !live_del(p)) g_foreign_frees++;
        live_add(q);
    }
    return q;
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    if (inject()) return NULL;
    void *p = __real_aligned_alloc(a, n);
    live_add(p);
    return p;
}
int __wrap_posix_memalign(void **out, size_t a, size_t n) {
    if (inject()) return 12; /* ENOMEM */
    int r = __real_posix_memalign(out, a, n);
    if (!r) live_add(*out);
    return r;
}
char *__wrap_strdup(const char *s) {
    if (inject()) return NULL;
    size_t n = strlen(s) + 1;
    char *p = __real_malloc(n);
    if (p) memcpy(p, s, n);
    live_add(p);
    return p;
}
void __wrap_free(void *p) {
    if (!p) return;
    if (!live_del(p)) g_foreign_frees++;
    __real_free(p);
}

static void arm(long fail_at, int sticky) {
    g_calls = 0;
    g_failed = 0;
    g_fail_at = fail_at;
    g_sticky = sticky;
    g_armed = 1;
}
static void disarm(void) { g_armed = 0; }

/* Every pointer allocated after sequence number base and still live. */
static void assert_no_leak(long live_before, long seq_base, const char *what, long n) {
    if (g_live == live_before) return;
    for (size_t i = 0; i < LIVE_SLOTS; i++)
        if (g_ptr[i] && g_ptr[i] != TOMB && g_pseq[i] > seq_base)
            print_error("  live: allocation #%ld\n", g_pseq[i] - seq_base);
    fail_msg("%s, failing allocation %ld: %ld allocations leaked", what, n, g_live - live_before);
}

/* --------------------------------------------------------------- model */

enum { BATCH = 4, HW = 7, CLASSES = 3, FIELDS = 2 };

typedef struct model {
    eqr_ctx *ctx;
    eqr_rep *t_in, *t_hid;
    eqr_gconv *c1, *c2;
    eqr_relax *relax;
    eqr_rlayer *r1, *r2;
    eqr_tensor *fc_w, *fc_b;
    eqr_optim *opt;
} model;

/* Build the model (relax_minimal's, smaller). On an error the objects made
 * so far stay in m for destroy(); returns the context's status, or
 * EQR_ERR_NOMEM when even the context could not be made. */
static eqr_status build(model *m, size_t arena_bytes) {
    memset(m, 0, sizeof *m);
    m->ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 5, .threads = 1, .arena_bytes = arena_bytes});
    if (!m->ctx) return EQR_ERR_NOMEM;
    eqr_ctx *ctx = m->ctx;
    eqr_group c4 = eqr_group_cyclic(4);
    eqr_rep_part trivial = eqr_part_irrep(eqr_irrep_of(&c4, 0, 0), 1);
    eqr_rep_part regular = eqr_part_regular(FIELDS);
    m->t_in = eqr_rep_create(ctx, &c4, 1, &trivial);
    m->t_hid = eqr_rep_create(ctx, &c4, 1, &regular);
    eqr_gconv_opts same3 = {.geom = EQR_CONV2D(1, 1, 1)};
    m->c1 = eqr_gconv_create(ctx, "c1", m->t_in, m->t_hid, 3, &same3);
    m->c2 = eqr_gconv_create(ctx, "c2", m->t_hid, m->t_hid, 3, &same3);
    eqr_relax_opts ro = {.theta = 0.5f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.1f,
                         .lambda_defect = 0.01f, .lambda_norm = 0.01f};
    m->relax = eqr_relax_create(ctx, "relax", &ro);
    m->r1 = eqr_relax_gconv(ctx, m->relax, "c1", m->c1, NULL);
    m->r2 = eqr_relax_gconv(ctx, m->relax, "c2", m->c2, NULL);
    int64_t ws[2] = {CLASSES, FIELDS}, bs[1] = {CLASSES};
    m->fc_w = eqr_param_create(ctx, "fc.weight", 2, ws, 0);
    m->fc_b = eqr_param_create(ctx, "fc.bias", 1, bs, EQR_PARAM_NO_DECAY);
    eqr_param_init_xavier_uniform(ctx, m->fc_w, 1.0f);
    m->opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 1e-2f});
    eqr_status st = eqr_error_status(ctx);
    if (st == EQR_OK && !(m->t_in && m->t_hid && m->c1 && m->c2 && m->relax && m->r1 && m->r2 &&
                          m->fc_w && m->fc_b && m->opt))
        fail_msg("construction returned OK with an object missing");
    return st;
}

static void destroy(model *m) {
    eqr_optim_destroy(m->opt);
    eqr_relax_destroy(m->relax);
    eqr_gconv_destroy(m->c1);
    eqr_gconv_destroy(m->c2);
    eqr_rep_destroy(m->t_in);
    eqr_rep_destroy(m->t_hid);
    eqr_ctx_destroy(m->ctx);
    memset(m, 0, sizeof *m);
}

static float g_x[BATCH * HW * HW];
static int32_t g_y[BATCH];

static void make_data(void) {
    tu_fill_uniform(g_x, BATCH * HW * HW, 17);
    for (int i = 0; i < BATCH; i++) g_y[i] = i % CLASSES;
}

/* x [N,1,H,W] -> logits [N,CLASSES]: relaxed lifting conv, ReLU, relaxed
 * group conv, ReLU, spatial mean, max over the 4 orientations, linear. */
static eqr_tensor *forward(eqr_ctx *ctx, void *p, eqr_tensor *x) {
    model *m = p;
    eqr_tensor *h = eqr_relu(ctx, eqr_rlayer_forward(ctx, m->r1, x));
    h = eqr_relu(ctx, eqr_rlayer_forward(ctx, m->r2, h));
    h = eqr_global_avgpool(ctx, h);
    int64_t s3[3] = {-1, FIELDS, 4};
    h = eqr_max(ctx, eqr_reshape(ctx, h, 3, s3), 2, 0);
    return eqr_linear(ctx, h, m->fc_w, m->fc_b);
}

/* One training step; returns the context's status. */
static eqr_status step(model *m) {
    eqr_ctx *ctx = m->ctx;
    eqr_step_reset(ctx);
    eqr_grad_zero(ctx);
    int64_t xs[4] = {BATCH, 1, HW, HW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    if (x) memcpy(x->data, g_x, sizeof g_x);
    eqr_tensor *logits = forward(ctx, m, x);
    eqr_tensor *task = eqr_softmax_cross_entropy(ctx, logits, g_y);
    eqr_tensor *loss = eqr_add(ctx, task, eqr_sum_all(ctx, eqr_relax_penalty(ctx, m->relax)));
    if (loss) eqr_backward(ctx, loss);
    if (!loss && eqr_error_status(ctx) == EQR_OK) fail_msg("step: NULL loss with status OK");
    if (eqr_error_status(ctx) == EQR_OK) eqr_optim_step(m->opt);
    return eqr_error_status(ctx);
}

/* The run failed: it must say so. */
static void assert_clean_error(eqr_ctx *ctx, eqr_status st, const char *what, long n) {
    if (st == EQR_OK) fail_msg("%s, failing allocation %ld: status OK after a failure", what, n);
    if (!ctx) return; /* the context itself could not be made */
    if (eqr_error_status(ctx) != st || !eqr_error_message(ctx)[0])
        fail_msg("%s, failing allocation %ld: status %s, message '%s'", what, n,
                 eqr_status_name(st), eqr_error_message(ctx));
}

static float *copy_params(eqr_ctx *ctx) {
    int64_t n = eqr_param_num_scalars(ctx);
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    memcpy(p, eqr_param_data_block(ctx), (size_t)n * sizeof *p);
    return p;
}
static float *copy_state(eqr_optim *opt) {
    int64_t n = eqr_optim_num_state_floats(opt);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    assert_non_null(p);
    memcpy(p, eqr_optim_state(opt), (size_t)n * sizeof *p);
    return p;
}

/* How the tests run: one-shot or sticky failures; the step arena's initial
 * size (0 = the default 64 MiB, one block per step; 1 KiB makes nearly every
 * tensor of a step grow the arena, so its failures are reached everywhere
 * in forward and backward). */
typedef struct mode {
    int sticky;
    size_t arena;
} mode;
static mode g_modes[4] = {{0, 0}, {1, 0}, {0, 1024}, {1, 1024}};

/* ---------------------------------------------------------------- tests */

static void test_construction(void **state) {
    const mode *md = *state;
    int sticky = md->sticky;
    long n = 1;
    for (;; n++) {
        long live0 = g_live, seq0 = g_seq;
        model m;
        arm(n, sticky);
        eqr_status st = build(&m, md->arena);
        disarm();
        int failed = g_failed > 0;
        if (failed && st != EQR_OK) assert_clean_error(m.ctx, st, "construction", n);
        if (!failed) assert_int_equal(st, EQR_OK);
        destroy(&m);
        assert_no_leak(live0, seq0, "construction", n);
        if (!failed) break;
    }
    print_message("construction (%s, arena %zu): failures injected at allocations 1..%ld, then success\n",
                  sticky ? "sticky" : "one-shot", md->arena, n - 1);
    assert_true(n > 10); /* the model does allocate */
}

static void test_training_step(void **state) {
    const mode *md = *state;
    int sticky = md->sticky;
    make_data();
    /* reference: the parameters after one clean step */
    model m;
    assert_int_equal(build(&m, md->arena), EQR_OK);
    assert_int_equal(step(&m), EQR_OK);
    float *ref = copy_params(m.ctx);
    int64_t np = eqr_param_num_scalars(m.ctx);
    destroy(&m);
    long n = 1;
    for (;; n++) {
        long live0 = g_live, seq0 = g_seq;
        assert_int_equal(build(&m, md->arena), EQR_OK);
        arm(n, sticky);
        eqr_status st = step(&m);
        disarm();
        int failed = g_failed > 0;
        if (failed && st != EQR_OK) {
            assert_clean_error(m.ctx, st, "training step", n);
            /* nothing lost: clear the error and the same step works */
            eqr_error_clear(m.ctx);
            if (step(&m) != EQR_OK)
                fail_msg("training step, failing allocation %ld: retry failed: %s", n,
                         eqr_error_message(m.ctx));
        } else {
            assert_int_equal(st, EQR_OK);
        }
        if (memcmp(ref, eqr_param_data_block(m.ctx), (size_t)np * sizeof *ref) != 0)
            fail_msg("training step, failing allocation %ld: parameters differ from a clean step", n);
        destroy(&m);
        assert_no_leak(live0, seq0, "training step", n);
        if (!failed) break;
    }
    free(ref);
    print_message("training step (%s, arena %zu): failures injected at allocations 1..%ld, then success\n",
                  sticky ? "sticky" : "one-shot", md->arena, n - 1);
    assert_true(n > 1);
}

static size_t slurp(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *out = b;
    return (size_t)len;
}

static void test_checkpoint_save(void **state) {
    const mode *md = *state;
    int sticky = md->sticky;
    make_data();
    char path[512], tmp[600];
    tu_tmp_path(path, "alloc_fail_save.ckpt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    model m;
    assert_int_equal(build(&m, md->arena), EQR_OK);
    assert_int_equal(step(&m), EQR_OK);
    uint64_t c[2] = {1, 2};
    assert_int_equal(eqr_checkpoint_save(m.ctx, path, m.opt, c, 2), EQR_OK);
    unsigned char *v1;
    size_t n1 = slurp(path, &v1);
    assert_int_equal(step(&m), EQR_OK); /* the next save holds other values */
    long n = 1;
    for (;; n++) {
        long live0 = g_live, seq0 = g_seq;
        arm(n, sticky);
        eqr_status st = eqr_checkpoint_save(m.ctx, path, m.opt, c, 2);
        disarm();
        assert_no_leak(live0, seq0, "checkpoint save", n);
        if (!g_failed) {
            assert_int_equal(st, EQR_OK);
            break;
        }
        assert_clean_error(m.ctx, st, "checkpoint save", n);
        unsigned char *now;
        size_t nn = slurp(path, &now);
        if (nn != n1 || memcmp(now, v1, n1) != 0)
            fail_msg("checkpoint save, failing allocation %ld: the file on disk changed", n);
        free(now);
        struct stat sb;
        if (stat(tmp, &sb) == 0) fail_msg("checkpoint save, failing allocation %ld: '%s' left behind", n, tmp);
        eqr_error_clear(m.ctx);
    }
    unsigned char *v2;
    size_t n2 = slurp(path, &v2);
    assert_true(n2 == n1 && memcmp(v1, v2, n1) != 0); /* the successful save wrote the new values */
    free(v1);
    free(v2);
    destroy(&m);
    remove(path);
    print_message("checkpoint save (%s, arena %zu): failures injected at allocations 1..%ld, then success\n",
                  sticky ? "sticky" : "one-shot", md->arena, n - 1);
    assert_true(n > 1);
}

static void test_checkpoint_load(void **state) {
    const mode *md = *state;
    int sticky = md->sticky;
    make_data();
    char path[512];
    tu_tmp_path(path, "alloc_fail_load.ckpt");
    model m;
    assert_int_equal(build(&m, md->arena), EQR_OK);
    assert_int_equal(step(&m), EQR_OK);
    uint64_t c[2] = {1, 2};
    assert_int_equal(eqr_checkpoint_save(m.ctx, path, m.opt, c, 2), EQR_OK);
    float *p1 = copy_params(m.ctx);
    assert_int_equal(step(&m), EQR_OK); /* now the model differs from the file */
    float *p2 = copy_params(m.ctx), *s2 = copy_state(m.opt);
    int64_t np = eqr_param_num_scalars(m.ctx), ns = eqr_optim_num_state_floats(m.opt);
    int64_t steps2 = eqr_optim_num_steps(m.opt);
    long n = 1;
    for (;; n++) {
        long live0 = g_live, seq0 = g_seq;
        uint64_t got[2] = {77, 78};
        arm(n, sticky);
        eqr_status st = eqr_checkpoint_load(m.ctx, path, m.opt, got, 2);
        disarm();
        assert_no_leak(live0, seq0, "checkpoint load", n);
        if (!g_failed) {
            assert_int_equal(st, EQR_OK);
            assert_memory_equal(p1, eqr_param_data_block(m.ctx), (size_t)np * sizeof *p1);
            assert_true(got[0] == 1 && got[1] == 2);
            break;
        }
        assert_clean_error(m.ctx, st, "checkpoint load", n);
        if (memcmp(p2, eqr_param_data_block(m.ctx), (size_t)np * sizeof *p2) != 0 ||
            memcmp(s2, eqr_optim_state(m.opt), (size_t)ns * sizeof *s2) != 0 ||
            eqr_optim_num_steps(m.opt) != steps2 || got[0] != 77 || got[1] != 78)
            fail_msg("checkpoint load, failing allocation %ld: the model or optimizer changed", n);
        eqr_error_clear(m.ctx);
    }
    free(p1);
    free(p2);
    free(s2);
    destroy(&m);
    remove(path);
    print_message("checkpoint load (%s, arena %zu): failures injected at allocations 1..%ld, then success\n",
                  sticky ? "sticky" : "one-shot", md->arena, n - 1);
    assert_true(n > 1);
}

/* IDX files and datasets, plain and gzip: the read buffer, the element
 * buffer (grown by doubling as data arrives) and the labels. A failure
 * leaves the dataset empty. */
static void test_dataset_load(void **state) {
    (void)state;
    char ip[512], lp[512];
    tu_tmp_path(ip, "alloc_fail_images.idx");
    tu_tmp_path(lp, "alloc_fail_labels.idx.gz");
    enum { N = 40, H = 5, W = 6 };
    unsigned char img[16 + N * H * W], lab[8 + N];
    unsigned char ih[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, H, 0, 0, 0, W};
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, N};
    memcpy(img, ih, 16);
    memcpy(lab, lh, 8);
    for (int i = 0; i < N * H * W; i++) img[16 + i] = (unsigned char)(i * 7);
    for (int i = 0; i < N; i++) lab[8 + i] = (unsigned char)(i % 4);
    FILE *f = fopen(ip, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img, 1, sizeof img, f), sizeof img);
    fclose(f);
    gzFile g = gzopen(lp, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, lab, sizeof lab), (int)sizeof lab);
    assert_int_equal(gzclose(g), Z_OK);
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    assert_non_null(ctx);
    long n = 1;
    for (int sticky = 0; sticky < 2; sticky++) {
        for (n = 1;; n++) {
            long live0 = g_live, seq0 = g_seq;
            eqr_dataset ds;
            arm(n, sticky);
            eqr_status st = eqr_dataset_load_idx(ctx, ip, lp, 0, &ds);
            disarm();
            if (!g_failed) {
                assert_int_equal(st, EQR_OK);
                assert_true(ds.n == N && ds.h == H && ds.w == W && ds.classes == 4);
                assert_int_equal(ds.y[N - 1], (N - 1) % 4);
                /* 7 * fl(1/255), two roundings: within eps of 7/255 relative */
                assert_true(fabs(ds.x[1] - 7.0 / 255.0) <= FLT_EPSILON * 7.0 / 255.0);
                eqr_dataset_free(&ds);
                assert_no_leak(live0, seq0, "dataset load", n);
                break;
            }
            assert_clean_error(ctx, st, "dataset load", n);
            assert_true(ds.n == 0 && !ds.x && !ds.y);
            assert_no_leak(live0, seq0, "dataset load", n);
            eqr_error_clear(ctx);
        }
        print_message("dataset load (%s): failures injected at allocations 1..%ld, then success\n",
                      sticky ? "sticky" : "one-shot", n - 1);
    }
    eqr_ctx_destroy(ctx);
    remove(ip);
    remove(lp);
    assert_true(n > 3);
}

/* Metrics tables (train.h): making one and filling 100 rows (the row
 * buffer grows), writing it as CSV (the file on disk unchanged and no
 * temporary beside it when that fails) and reading it back (the table
 * unchanged when that fails). */
static void fill(eqr_ctx *ctx, eqr_metrics *m, int rows, double k) {
    for (int r = 0; r < rows; r++) {
        double v[3] = {r, k / (r + 1), r % 3 ? NAN : -r};
        eqr_metrics_add_row(ctx, m, v);
    }
}

static void test_metrics(void **state) {
    (void)state;
    const char *names[3] = {"step", "loss", "theta"};
    char path[512], tmp[600];
    tu_tmp_path(path, "alloc_fail_metrics.csv");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    assert_non_null(ctx);
    long n[3] = {0, 0, 0};
    for (int sticky = 0; sticky < 2; sticky++) {
        for (n[0] = 1;; n[0]++) { /* create + rows */
            long live0 = g_live, seq0 = g_seq;
            arm(n[0], sticky);
            eqr_metrics *m = eqr_metrics_create(ctx, 3, names);
            if (m) fill(ctx, m, 100, 1.0);
            disarm();
            eqr_status st = eqr_error_status(ctx);
            if (!g_failed) assert_int_equal(st, EQR_OK);
            else assert_clean_error(ctx, st, "metrics create and fill", n[0]);
            if (!g_failed) assert_int_equal(eqr_metrics_num_rows(m), 100);
            eqr_metrics_destroy(m);
            eqr_error_clear(ctx);
            assert_no_leak(live0, seq0, "metrics create and fill", n[0]);
            if (!g_failed) break;
        }
        eqr_metrics *a = eqr_metrics_create(ctx, 3, names), *b = eqr_metrics_create(ctx, 3, names);
        assert_non_null(a);
        assert_non_null(b);
        fill(ctx, a, 100, 1.0);
        fill(ctx, b, 7, 2.0);
        assert_int_equal(eqr_metrics_write_csv(ctx, b, path), EQR_OK);
        unsigned char *v1;
        size_t n1 = slurp(path, &v1);
        for (n[1] = 1;; n[1]++) { /* write a over b's file */
            long live0 = g_live, seq0 = g_seq;
            arm(n[1], sticky);
            eqr_status st = eqr_metrics_write_csv(ctx, a, path);
            disarm();
            assert_no_leak(live0, seq0, "metrics write", n[1]);
            if (!g_failed) {
                assert_int_equal(st, EQR_OK);
                break;
            }
            assert_clean_error(ctx, st, "metrics write", n[1]);
            unsigned char *now;
            size_t nn = slurp(path, &now);
            if (nn != n1 || memcmp(now, v1, n1) != 0)
                fail_msg("metrics write, failing allocation %ld: the file on disk changed", n[1]);
            free(now);
            struct stat sb;
            if (stat(tmp, &sb) == 0) fail_msg("metrics write, failing allocation %ld: '%s' left behind", n[1], tmp);
            eqr_error_clear(ctx);
        }
        free(v1);
        for (n[2] = 1;; n[2]++) { /* read a's file into b (7 rows) */
            long live0 = g_live, seq0 = g_seq;
            eqr_metrics *c = eqr_metrics_create(ctx, 3, names);
            assert_non_null(c);
            fill(ctx, c, 7, 2.0);
            arm(n[2], sticky);
            eqr_status st = eqr_metrics_read_csv(ctx, c, path);
            disarm();
            if (!g_failed) {
                assert_int_equal(st, EQR_OK);
                assert_int_equal(eqr_metrics_num_rows(c), 100);
            } else {
                assert_clean_error(ctx, st, "metrics read", n[2]);
                assert_int_equal(eqr_metrics_num_rows(c), 7);
                for (int r = 0; r < 7; r++)
                    for (int k = 0; k < 3; k++) {
                        double x = eqr_metrics_at(c, r, k), y = eqr_metrics_at(b, r, k);
                        assert_memory_equal(&x, &y, sizeof x);
                    }
                eqr_error_clear(ctx);
            }
            eqr_metrics_destroy(c);
            assert_no_leak(live0, seq0, "metrics read", n[2]);
            if (!g_failed) break;
        }
        eqr_metrics_destroy(a);
        eqr_metrics_destroy(b);
        print_message("metrics (%s): failures injected at allocations 1..%ld (create + 100 rows), "
                      "1..%ld (write), 1..%ld (read), then success\n",
                      sticky ? "sticky" : "one-shot", n[0] - 1, n[1] - 1, n[2] - 1);
    }
    eqr_ctx_destroy(ctx);
    remove(path);
    assert_true(n[0] > 3 && n[1] > 1 && n[2] > 2);
}

/* The training helper (train.h): making a trainer (telemetry every step,
 * a probe set, clipping), a cold trainer step, and a projected evaluation,
 * which must leave every parameter bit-identical whether it fails or not. */
static long g_after_step; /* trainer steps that failed after the optimizer step */

/* probe NULL: no telemetry */
static eqr_trainer *make_trainer(model *m, const eqr_dataset *probe) {
    eqr_trainer_opts to = {.forward = forward, .model = m, .opt = m->opt, .relax = m->relax,
                           .project = EQR_PROJECT_FOLD, .clip_norm = 1.0f, .epochs = 1,
                           .telemetry_every = probe ? 1 : 0, .probe = probe, .eval_batch = 3};
    return eqr_trainer_create(m->ctx, &to);
}
static eqr_status trainer_step(model *m, eqr_trainer *t) {
    eqr_ctx *ctx = m->ctx;
    eqr_grad_zero(ctx);
    int64_t xs[4] = {BATCH, 1, HW, HW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    if (x) memcpy(x->data, g_x, sizeof g_x);
    eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, forward(ctx, m, x), g_y);
    if (!loss && eqr_error_status(ctx) == EQR_OK) fail_msg("trainer step: NULL loss with status OK");
    if (loss) eqr_trainer_step(t, loss, BATCH, NULL);
    eqr_status st = eqr_error_status(ctx);
    if (st != EQR_OK) eqr_step_reset(ctx); /* the trainer ends only the steps it ran */
    return st;
}

static void test_trainer(void **state) {
    const mode *md = *state;
    int sticky = md->sticky;
    make_data();
    eqr_dataset probe = {.n = BATCH, .c = 1, .h = HW, .w = HW, .classes = CLASSES, .x = g_x, .y = g_y};
    model m;
    /* reference: the parameters after one clean trainer step */
    assert_int_equal(build(&m, md->arena), EQR_OK);
    eqr_trainer *t = make_trainer(&m, &probe);
    assert_non_null(t);
    assert_int_equal(trainer_step(&m, t), EQR_OK);
    float *ref = copy_params(m.ctx);
    int64_t np = eqr_param_num_scalars(m.ctx);
    eqr_trainer_destroy(t);
    destroy(&m);
    long n[3];
    g_after_step = 0;
    for (n[0] = 1;; n[0]++) { /* create */
        long live0 = g_live, seq0 = g_seq;
        assert_int_equal(build(&m, md->arena), EQR_OK);
        arm(n[0], sticky);
        t = make_trainer(&m, &probe);
        disarm();
        if (g_failed && !t) assert_clean_error(m.ctx, eqr_error_status(m.ctx), "trainer create", n[0]);
        if (!g_failed) assert_non_null(t);
        eqr_trainer_destroy(t);
        destroy(&m);
        assert_no_leak(live0, seq0, "trainer create", n[0]);
        if (!g_failed) break;
    }
    for (n[1] = 1;; n[1]++) { /* a cold step */
        long live0 = g_live, seq0 = g_seq;
        assert_int_equal(build(&m, md->arena), EQR_OK);
        t = make_trainer(&m, &probe);
        assert_non_null(t);
        float *p0 = copy_params(m.ctx);
        arm(n[1], sticky);
        eqr_status st = trainer_step(&m, t);
        disarm();
        int failed = g_failed > 0;
        if (failed && st != EQR_OK) {
            assert_clean_error(m.ctx, st, "trainer step", n[1]);
            eqr_error_clear(m.ctx);
            /* failed before the optimizer step: nothing moved, a retry is
             * the step; failed in the probe evaluation after it (train.h):
             * the step is taken, whole */
            if (memcmp(p0, eqr_param_data_block(m.ctx), (size_t)np * sizeof *p0) == 0) {
                if (trainer_step(&m, t) != EQR_OK)
                    fail_msg("trainer step, failing allocation %ld: retry failed: %s", n[1],
                             eqr_error_message(m.ctx));
            } else {
                g_after_step++;
            }
        } else {
            assert_int_equal(st, EQR_OK);
        }
        if (memcmp(ref, eqr_param_data_block(m.ctx), (size_t)np * sizeof *ref) != 0)
            fail_msg("trainer step, failing allocation %ld: parameters differ from a clean step", n[1]);
        free(p0);
        eqr_trainer_destroy(t);
        destroy(&m);
        assert_no_leak(live0, seq0, "trainer step", n[1]);
        if (!failed) break;
    }
    for (n[2] = 1;; n[2]++) { /* projected evaluation after a step (no telemetry, which
                                * would have made the snapshot buffer already) */
        long live0 = g_live, seq0 = g_seq;
        assert_int_equal(build(&m, md->arena), EQR_OK);
        t = make_trainer(&m, NULL);
        assert_non_null(t);
        assert_int_equal(trainer_step(&m, t), EQR_OK);
        float *before = copy_params(m.ctx);
        double loss = -1, acc = -1;
        arm(n[2], sticky);
        eqr_status st = eqr_trainer_evaluate(t, &probe, 1, &loss, &acc);
        disarm();
        if (g_failed && st != EQR_OK) assert_clean_error(m.ctx, st, "projected evaluation", n[2]);
        if (!g_failed) assert_true(st == EQR_OK && loss >= 0 && acc >= 0 && acc <= 1);
        if (memcmp(before, eqr_param_data_block(m.ctx), (size_t)np * sizeof *ref) != 0)
            fail_msg("projected evaluation, failing allocation %ld: parameters changed", n[2]);
        free(before);
        eqr_trainer_destroy(t);
        destroy(&m);
        assert_no_leak(live0, seq0, "projected evaluation", n[2]);
        if (!g_failed) break;
    }
    free(ref);
    print_message("trainer (%s, arena %zu): failures injected at allocations 1..%ld (create), "
                  "1..%ld (cold step; %ld failed in the probe evaluation after the optimizer "
                  "step), 1..%ld (projected evaluation), then success\n",
                  sticky ? "sticky" : "one-shot", md->arena, n[0] - 1, n[1] - 1, g_after_step,
                  n[2] - 1);
    assert_true(n[0] > 1 && n[1] > 1 && n[2] > 1);
}

/* The wrappers see the library's allocations at all (else every test above
 * would pass without injecting anything). */
static void test_wrappers_active(void **state) {
    (void)state;
    long live0 = g_live;
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    assert_non_null(ctx);
    assert_true(g_live > live0);
    arm(1, 0);
    eqr_ctx *none = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    disarm();
    assert_null(none);
    assert_int_equal(g_failed, 1);
    eqr_ctx_destroy(ctx);
    assert_int_equal(g_live, live0);
    assert_int_equal(g_foreign_frees, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrappers_active),
        cmocka_unit_test_prestate(test_construction, &g_modes[0]),
        cmocka_unit_test_prestate(test_construction, &g_modes[1]),
        cmocka_unit_test_prestate(test_training_step, &g_modes[0]),
        cmocka_unit_test_prestate(test_training_step, &g_modes[1]),
        cmocka_unit_test_prestate(test_training_step, &g_modes[2]),
        cmocka_unit_test_prestate(test_training_step, &g_modes[3]),
        cmocka_unit_test_prestate(test_checkpoint_save, &g_modes[0]),
        cmocka_unit_test_prestate(test_checkpoint_save, &g_modes[1]),
        cmocka_unit_test_prestate(test_checkpoint_load, &g_modes[0]),
        cmocka_unit_test_prestate(test_checkpoint_load, &g_modes[1]),
        cmocka_unit_test(test_dataset_load),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test_prestate(test_trainer, &g_modes[0]),
        cmocka_unit_test_prestate(test_trainer, &g_modes[1]),
        cmocka_unit_test_prestate(test_trainer, &g_modes[2]),
        cmocka_unit_test_prestate(test_trainer, &g_modes[3]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
