/* The training helper (train.h): metrics tables round-trip through CSV
 * (values as printed, empty fields as NaN), bad headers / lines / paths are
 * refused with the table and the file unchanged, SVG charts name their
 * panels; a trainer step is bit-identical to the hand-written step
 * (penalty, backward, optimizer, scheduler); a relaxed C4 model learns a
 * synthetic task through eqr_trainer_epoch; telemetry rows hold finite
 * shares, Adam moments and probe accuracies; a projected evaluation leaves
 * every parameter bit-identical, a final one leaves the model projected. */
#include "testutil.h"

#include "tu_tiny_model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ metrics */

static void write_text(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* What fuzz_metrics found the reader accepting or doing wrongly: every line
 * of a table must be whole (ncols fields, a final line break, no NUL byte,
 * no blank or space-led field that strtod would read across a line break),
 * and a header-only file read into an empty table copied from NULL. */
static void test_metrics_csv_strict(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    const char *names[3] = {"epoch", "loss", "acc"};
    char path[512];
    tu_tmp_path(path, "metrics_strict.csv");
    eqr_metrics *e = eqr_metrics_create(ctx, 3, names);
    assert_non_null(e);
    write_text(path, "epoch,loss,acc\n", 15);
    assert_int_equal(eqr_metrics_read_csv(ctx, e, path), EQR_OK);
    assert_int_equal(eqr_metrics_num_rows(e), 0);

    eqr_metrics *m = eqr_metrics_create(ctx, 3, names);
    double one[3] = {9, 8, 7};
    assert_int_equal(eqr_metrics_add_row(ctx, m, one), EQR_OK);
    struct { const char *text; size_t n; const char *needle; } bad[] = {
        {"epoch,loss,acc\n1,2,3\n4,5,6", 26, "line 3 does not end in a line break"},
        {"epoch,loss,acc\n \n1,2,3\n", 23, "line 2, column 1: not a number"},
        {"epoch,loss,acc\n1, 2,3\n", 22, "line 2, column 2: not a number"},
        {"epoch,loss,acc\n1,2,3\n\0junk\n", 27, "NUL byte"},
        {"epoch,loss,acc", 14, "header"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_text(path, bad[k].text, bad[k].n);
        tu_assert_error(ctx, eqr_metrics_read_csv(ctx, m, path), bad[k].needle);
        assert_int_equal(eqr_metrics_num_rows(m), 1); /* the table as it was */
        assert_true(eqr_metrics_at(m, 0, 2) == 7);
    }
    eqr_metrics_destroy(e);
    eqr_metrics_destroy(m);
    remove(path);
    eqr_ctx_destroy(ctx);
}

static void test_metrics_csv(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    const char *names[3] = {"epoch", "loss", "acc"};
    eqr_metrics *m = eqr_metrics_create(ctx, 3, names);
    assert_non_null(m);
    double rows[3][3] = {{1, 0.123456789012, NAN}, {2, 1e-30, 0.5}, {3, -7.25, 1}};
    for (int r = 0; r < 3; r++) assert_int_equal(eqr_metrics_add_row(ctx, m, rows[r]), EQR_OK);
    char path[512];
    tu_tmp_path(path, "metrics.csv");
    assert_int_equal(eqr_metrics_write_csv(ctx, m, path), EQR_OK);

    eqr_metrics *b = eqr_metrics_create(ctx, 3, names);
    assert_int_equal(eqr_metrics_read_csv(ctx, b, path), EQR_OK);
    assert_int_equal(eqr_metrics_num_rows(b), 3);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            double want = rows[r][c], got = eqr_metrics_at(b, r, c);
            if (isnan(want)) {
                assert_true(isnan(got));
                continue;
            }
            char s[64];
            snprintf(s, sizeof s, "%.9g", want); /* what the file holds */
            assert_true(got == strtod(s, NULL));
        }

    /* another header: refused, table unchanged */
    const char *other[3] = {"epoch", "loss", "accuracy"};
    eqr_metrics *o = eqr_metrics_create(ctx, 3, other);
    double one[3] = {9, 9, 9};
    eqr_metrics_add_row(ctx, o, one);
    tu_assert_error(ctx, eqr_metrics_read_csv(ctx, o, path), "header");
    assert_int_equal(eqr_metrics_num_rows(o), 1);

    /* a malformed line is named */
    FILE *f = fopen(path, "a");
    fputs("4,abc,1\n", f);
    fclose(f);
    tu_assert_error(ctx, eqr_metrics_read_csv(ctx, b, path), "line 5");
    assert_int_equal(eqr_metrics_num_rows(b), 3);
    f = fopen(path, "w");
    fputs("epoch,loss,acc\n1,2\n", f);
    fclose(f);
    tu_assert_error(ctx, eqr_metrics_read_csv(ctx, b, path), "3 comma-separated");

    /* bad paths: a directory, a missing directory; nothing left behind */
    char dir[512];
    tu_tmp_path(dir, "metrics_dir");
    mkdir(dir, 0755);
    tu_assert_error(ctx, eqr_metrics_write_csv(ctx, m, dir), "is a directory");
    tu_assert_error(ctx, eqr_metrics_write_csv(ctx, m, "/nonexistent-dir/m.csv"), "cannot create");
    /* bad names */
    const char *bad[2] = {"a,b", "c"};
    assert_null(eqr_metrics_create(ctx, 2, bad));
    assert_int_equal(eqr_error_status(ctx), EQR_ERR_ARG);
    eqr_error_clear(ctx);
    const char *twice[2] = {"a", "a"};
    assert_null(eqr_metrics_create(ctx, 2, twice));
    eqr_error_clear(ctx);
    eqr_metrics_destroy(m);
    eqr_metrics_destroy(b);
    eqr_metrics_destroy(o);
    eqr_ctx_destroy(ctx);
}

static void test_metrics_svg(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    const char *names[3] = {"step", "loss", "theta"};
    eqr_metrics *m = eqr_metrics_create(ctx, 3, names);
    for (int r = 0; r < 5; r++) {
        double v[3] = {r + 1, 1.0 / (r + 1), r == 2 ? NAN : 0.1 * r};
        eqr_metrics_add_row(ctx, m, v);
    }
    eqr_plot_panel p[2] = {{"the loss", 1, {"loss"}, {"train"}}, {"theta panel", 0, {"theta"}, {0}}};
    char path[512];
    tu_tmp_path(path, "plot.svg");
    assert_int_equal(eqr_metrics_write_svg(ctx, m, path, "a title", "step", p, 2), EQR_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "the loss"));
    assert_non_null(strstr(buf, "theta panel"));
    assert_non_null(strstr(buf, "a title"));
    assert_non_null(strstr(buf, "</svg>"));
    eqr_plot_panel q = {"x", 0, {"nope"}, {0}};
    tu_assert_error(ctx, eqr_metrics_write_svg(ctx, m, path, "t", "step", &q, 1), "no column 'nope'");
    eqr_metrics_destroy(m);
    eqr_ctx_destroy(ctx);
}

/* -------------------------------------------------------------- trainer */

static void test_step_matches_by_hand(void **state) {
    (void)state;
    float *after[2];
    int64_t total = 0;
    for (int way = 0; way < 2; way++) {
        eqr_ctx *ctx = tu_ctx(7);
        tu_tiny_model m;
        tu_tiny_build(ctx, &m, 0.2f);
        eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
        eqr_optim *opt = eqr_optim_create(ctx, &oo);
        eqr_tensor *x = tu_randn(ctx, 4, 1, 8, 8);
        int32_t y[4] = {0, 1, 1, 0};
        eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, tu_tiny_forward(ctx, &m, x), y);
        if (way == 0) {
            eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .relax = m.r};
            eqr_trainer *t = eqr_trainer_create(ctx, &to);
            assert_non_null(t);
            assert_int_equal(eqr_trainer_step(t, loss, 4, NULL), EQR_OK);
            eqr_trainer_destroy(t);
        } else {
            eqr_tensor *tot = eqr_add(ctx, loss, eqr_relax_penalty(ctx, m.r));
            eqr_grad_zero(ctx);
            assert_int_equal(eqr_backward(ctx, tot), EQR_OK);
            assert_int_equal(eqr_optim_step(opt), EQR_OK);
            eqr_step_reset(ctx);
        }
        total = eqr_param_num_scalars(ctx);
        after[way] = malloc((size_t)total * sizeof(float));
        memcpy(after[way], eqr_param_data_block(ctx), (size_t)total * sizeof(float));
        eqr_optim_destroy(opt);
        tu_tiny_free(&m);
        eqr_ctx_destroy(ctx);
    }
    assert_memory_equal(after[0], after[1], (size_t)total * sizeof(float));
    free(after[0]);
    free(after[1]);
}

static void test_epochs_telemetry_projection(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    tu_tiny_model m;
    tu_tiny_build(ctx, &m, 0.3f);
    eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.02f};
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    eqr_dataset train, test;
    tu_tiny_data(&train, 96, 11);
    tu_tiny_data(&test, 40, 12);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .relax = m.r,
                           .epochs = 6, .telemetry_every = 2, .probe = &test, .eval_batch = 16};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    assert_non_null(t);
    eqr_epoch_stats st[6];
    for (int e = 0; e < 6; e++) assert_int_equal(eqr_trainer_epoch(t, &bt, e + 1, &st[e]), EQR_OK);
    print_message("epoch 1 loss %.4f acc %.3f, epoch 6 loss %.4f acc %.3f\n", st[0].loss,
                  st[0].acc, st[5].loss, st[5].acc);
    assert_int_equal(st[5].steps, 6);
    assert_true(st[5].loss < st[0].loss);
    assert_true(st[5].acc >= 0.9);

    eqr_metrics *s = eqr_trainer_steps(t);
    assert_int_equal(eqr_metrics_num_rows(s), 18); /* 36 steps, every 2nd */
    int cs = eqr_metrics_find(s, "c1.share"), cm = eqr_metrics_find(s, "c1.adam_m");
    int cp = eqr_metrics_find(s, "probe_acc_projected"), cj = eqr_metrics_find(s, "projection_jump");
    assert_true(cs >= 0 && cm >= 0 && cp >= 0 && cj >= 0);
    for (int64_t r = 0; r < 18; r++) {
        assert_true(eqr_metrics_at(s, r, 0) == 2.0 * (double)(r + 1)); /* step */
        assert_true(eqr_metrics_at(s, r, cs) > 0 && isfinite(eqr_metrics_at(s, r, cs)));
        assert_true(eqr_metrics_at(s, r, cp) >= 0 && eqr_metrics_at(s, r, cp) <= 1);
    }
    /* moments before the first step are 0: row 1 (step 2) has them set */
    assert_true(eqr_metrics_at(s, 0, cm) > 0);

    /* a projected evaluation on a copy leaves every parameter as it was */
    int64_t total = eqr_param_num_scalars(ctx);
    float *before = malloc((size_t)total * sizeof(float));
    memcpy(before, eqr_param_data_block(ctx), (size_t)total * sizeof(float));
    double l0, a0, l1, a1, l2, a2;
    assert_int_equal(eqr_trainer_evaluate(t, &test, 0, &l0, &a0), EQR_OK);
    assert_int_equal(eqr_trainer_evaluate(t, &test, 1, &l1, &a1), EQR_OK);
    assert_memory_equal(before, eqr_param_data_block(ctx), (size_t)total * sizeof(float));
    assert_true(l1 != l0); /* theta 0.3: the projection changes the model */
    /* the final one keeps it projected and gives the same numbers */
    assert_int_equal(eqr_trainer_evaluate(t, &test, 2, &l2, &a2), EQR_OK);
    assert_true(l2 == l1 && a2 == a1);
    assert_true(eqr_relax_theta(m.r)->data[0] == 0.0f);
    tu_assert_error(ctx, eqr_trainer_evaluate(t, &test, 3, &l2, &a2), "projected must be");
    free(before);
    eqr_trainer_destroy(t);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_optim_destroy(opt);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
}

/* A model given as a module trains as the same module given through
 * forward/model/set_mode, and evaluation runs it in eval mode: with dropout
 * p = 0.5 two evaluations agree and equal a by-hand eval-mode pass. */
static void mod_set_mode(void *m, int training) { eqr_module_set_training(m, training); }

static void test_trainer_module(void **state) {
    (void)state;
    float *after[2];
    double loss_eval[2];
    int64_t total = 0;
    for (int way = 0; way < 2; way++) {
        eqr_ctx *ctx = tu_ctx(21);
        eqr_module *net = eqr_sequential_create(ctx, "net");
        assert_int_equal(eqr_sequential_add(net, eqr_flatten_module(ctx, "flat")), EQR_OK);
        assert_int_equal(eqr_sequential_add(net, eqr_dropout_module(ctx, "drop", 0.5f)), EQR_OK);
        assert_int_equal(eqr_sequential_add(net, eqr_linear_module(ctx, "fc", 64, 2, 1)), EQR_OK);
        eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
        eqr_optim *opt = eqr_optim_create(ctx, &oo);
        eqr_dataset train, test;
        tu_tiny_data(&train, 32, 5);
        tu_tiny_data(&test, 20, 6);
        eqr_batcher bt;
        assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 8, 1, 3), EQR_OK);
        eqr_trainer_opts to = {.opt = opt, .epochs = 1, .eval_batch = 8};
        if (way == 0) {
            to.module = net;
        } else {
            to.forward = eqr_module_apply;
            to.model = net;
            to.set_mode = mod_set_mode;
        }
        eqr_trainer *t = eqr_trainer_create(ctx, &to);
        assert_non_null(t);
        eqr_epoch_stats st;
        assert_int_equal(eqr_trainer_epoch(t, &bt, 1, &st), EQR_OK);
        double l, a, l2, a2;
        assert_int_equal(eqr_trainer_evaluate(t, &test, 0, &l, &a), EQR_OK);
        assert_int_equal(eqr_trainer_evaluate(t, &test, 0, &l2, &a2), EQR_OK);
        assert_true(l == l2 && a == a2);
        loss_eval[way] = l;
        /* by hand, in eval mode: the mean cross-entropy over the test set */
        eqr_module_set_training(net, 0);
        eqr_tensor *x = eqr_tensor_from(ctx, 4, (int64_t[]){20, 1, 8, 8}, test.x);
        eqr_tensor *ce = eqr_softmax_cross_entropy(ctx, eqr_module_forward(ctx, net, x), test.y);
        assert_non_null(ce);
        {
            /* eval_batch 8 vs one batch of 20: the logits may round differently
             * (any sgemm kernel, any batch split), each within gamma_65 m_i of
             * exact, m_i = max_k sum_j |W_kj x_ij| + |b_k| (64 products and the
             * bias); CE_i = logsumexp(z) - z_y moves by <= 2 gamma_65 m_i and
             * rounds by a few ulps of its parts (exp, log, the sum, the
             * difference: 8 u (m_i + 1), |z| <= m_i, log 2 < 1); means over
             * 20 (float, the op) and over 8-sample batches (float, then double):
             * gamma_21 + gamma_9 of the mean. Both paths carry the per-sample
             * part. */
            const eqr_tensor *W = eqr_param_find(ctx, "fc.weight"), *B = eqr_param_find(ctx, "fc.bias");
            assert_true(W && B);
            double per = 0;
            for (int i = 0; i < 20; i++) {
                double mi = 0;
                for (int k = 0; k < 2; k++) {
                    double m = fabs(B->data[k]);
                    for (int j = 0; j < 64; j++) m += fabs((double)W->data[k * 64 + j] * test.x[i * 64 + j]);
                    mi = fmax(mi, m);
                }
                per += (2 * tu_gamma(65) * mi + 8 * TU_U * (mi + 1)) / 20;
            }
            const double tol = 2 * per + (tu_gamma(21) + tu_gamma(9)) * (fabs(l) + per);
            if (!(fabs(ce->data[0] - l) <= tol))
                fail_msg("eval loss %.9g vs hand %.9g (bound %.3g)", l, (double)ce->data[0], tol);
            /* and over the trainer's own batches of 8 (the same ops on the
             * same operands): equal to the bit */
            double lsum = 0;
            for (int i = 0; i < 20; i += 8) {
                const int64_t b = 20 - i < 8 ? 20 - i : 8;
                eqr_tensor *xb = eqr_tensor_wrap(ctx, test.x + i * 64, 4, (int64_t[]){b, 1, 8, 8}); /* as the trainer */
                eqr_tensor *cb = eqr_softmax_cross_entropy(ctx, eqr_module_forward(ctx, net, xb), test.y + i);
                assert_non_null(cb);
                lsum += (double)cb->data[0] * (double)b;
            }
            assert_true(lsum / 20.0 == l);
        }
        eqr_step_reset(ctx);
        total = eqr_param_num_scalars(ctx);
        after[way] = malloc((size_t)total * sizeof(float));
        memcpy(after[way], eqr_param_data_block(ctx), (size_t)total * sizeof(float));
        /* the module path refuses a forward given beside it */
        to.module = net;
        to.forward = eqr_module_apply;
        assert_null(eqr_trainer_create(ctx, &to));
        tu_assert_error(ctx, eqr_error_status(ctx), "opts.module replaces forward");
        eqr_trainer_destroy(t);
        eqr_batcher_free(&bt);
        eqr_dataset_free(&train);
        eqr_dataset_free(&test);
        eqr_optim_destroy(opt);
        eqr_module_destroy(net);
        eqr_ctx_destroy(ctx);
    }
    assert_true(loss_eval[0] == loss_eval[1]);
    assert_memory_equal(after[0], after[1], (size_t)total * sizeof(float));
    free(after[0]);
    free(after[1]);
}

/* eqr_run_opts.ranks: recorded in the checkpoint as a third counter (a
 * single-process run writes two), a resume on another count refused naming
 * both, on the same count accepted; checkpoint_read_only reads on resume
 * and writes nothing; reduce_sums sees the epoch's sums. */
static int reduce_calls;
static eqr_status double_sums(eqr_ctx *ctx, void *user, double *v, int n) {
    (void)ctx;
    (void)user;
    for (int i = 0; i < n; i++) v[i] *= 2; /* as if a second rank held the same */
    reduce_calls++;
    return EQR_OK;
}

static eqr_status run_tiny(int64_t ranks, int read_only, const char *ckpt, int resume,
                           int reduce, eqr_run_result *res, char *msg, size_t msg_len) {
    eqr_ctx *ctx = tu_ctx(9);
    tu_tiny_model m;
    tu_tiny_build(ctx, &m, 0.3f);
    eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.02f};
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    eqr_dataset train, test;
    tu_tiny_data(&train, 32, 11);
    tu_tiny_data(&test, 16, 12);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .relax = m.r,
                           .epochs = 2, .eval_batch = 16,
                           .reduce_sums = reduce ? double_sums : NULL};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    assert_non_null(t);
    eqr_run_opts ro = {.train = &bt, .test = &test, .epochs = 2, .checkpoint = ckpt,
                       .resume = resume, .config = 77, .stop_after = resume ? 0 : 1,
                       .ranks = ranks, .checkpoint_read_only = read_only};
    eqr_status st = eqr_trainer_run(t, &ro, res);
    snprintf(msg, msg_len, "%s", eqr_error_message(ctx));
    eqr_trainer_destroy(t);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_optim_destroy(opt);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
    return st;
}

static void test_run_ranks(void **state) {
    (void)state;
    char p1[512], p2[512], p3[512], msg[512];
    tu_tmp_path(p1, "ranks1.ckpt");
    tu_tmp_path(p2, "ranks2.ckpt");
    tu_tmp_path(p3, "ranks_ro.ckpt");
    remove(p1);
    remove(p2);
    remove(p3);
    eqr_run_result res;
    assert_int_equal(run_tiny(0, 0, p1, 0, 0, &res, msg, sizeof msg), EQR_OK);
    assert_int_equal(run_tiny(2, 0, p2, 0, 0, &res, msg, sizeof msg), EQR_OK);
    assert_true(res.stopped && res.epochs_done == 1);
    eqr_ctx *ctx = tu_ctx(1);
    uint64_t c[4];
    int nc = -1;
    assert_int_equal(eqr_checkpoint_counters(ctx, p1, c, 4, &nc), EQR_OK);
    assert_int_equal(nc, 2);
    assert_true(c[0] == 1 && c[1] == 77);
    assert_int_equal(eqr_checkpoint_counters(ctx, p2, c, 4, &nc), EQR_OK);
    assert_int_equal(nc, 3);
    assert_true(c[0] == 1 && c[1] == 77 && c[2] == 2);
    tu_assert_error(ctx, eqr_checkpoint_counters(ctx, p2, c, 2, &nc), "holds 3 counters, room for 2");
    eqr_ctx_destroy(ctx);
    /* another count refused, naming both; the same count resumes */
    assert_int_equal(run_tiny(1, 0, p2, 1, 0, &res, msg, sizeof msg), EQR_ERR_MISMATCH);
    assert_non_null(strstr(msg, "written by a run on 2 processes, this run has 1"));
    assert_int_equal(run_tiny(3, 0, p2, 1, 0, &res, msg, sizeof msg), EQR_ERR_MISMATCH);
    assert_non_null(strstr(msg, "on 2 processes, this run has 3"));
    assert_int_equal(run_tiny(2, 0, p1, 1, 0, &res, msg, sizeof msg), EQR_ERR_MISMATCH);
    assert_non_null(strstr(msg, "written by a run on 1 process, this run has 2"));
    /* read-only: resumes from p2 on 2 ranks and leaves it as it was */
    FILE *f = fopen(p2, "rb");
    assert_non_null(f);
    unsigned char before[1 << 15], after[1 << 15];
    size_t nb = fread(before, 1, sizeof before, f);
    fclose(f);
    assert_int_equal(run_tiny(2, 1, p2, 1, 0, &res, msg, sizeof msg), EQR_OK);
    assert_int_equal(res.resumed_after, 1);
    f = fopen(p2, "rb");
    assert_int_equal(fread(after, 1, sizeof after, f), nb);
    fclose(f);
    assert_memory_equal(before, after, nb);
    /* and writes no checkpoint of a fresh run */
    assert_int_equal(run_tiny(2, 1, p3, 0, 0, &res, msg, sizeof msg), EQR_OK);
    assert_null(fopen(p3, "rb"));
    /* reduce_sums: once per epoch plus once per epoch for the norms */
    reduce_calls = 0;
    assert_int_equal(run_tiny(0, 0, NULL, 0, 1, &res, msg, sizeof msg), EQR_OK);
    assert_int_equal(reduce_calls, 2);
    remove(p1);
    remove(p2);
}

static void test_trainer_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_trainer_opts to = {0};
    assert_null(eqr_trainer_create(ctx, &to));
    tu_assert_error(ctx, eqr_error_status(ctx), "opts.forward (or opts.module) and opts.opt are required");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_csv),
        cmocka_unit_test(test_metrics_csv_strict),
        cmocka_unit_test(test_metrics_svg),
        cmocka_unit_test(test_step_matches_by_hand),
        cmocka_unit_test(test_epochs_telemetry_projection),
        cmocka_unit_test(test_trainer_module),
        cmocka_unit_test(test_trainer_errors),
        cmocka_unit_test(test_run_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
