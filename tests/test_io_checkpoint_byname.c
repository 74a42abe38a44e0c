/* Checkpoints, loading by name: entries found whatever their order and
 * offset; partial loads (missing, unexpected and mismatched entries, the
 * per-name callback and the log); the strict refusal's list of names; and
 * a file of format 1 (written before loading went by name). */

#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "tu_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- loading by name ---- */

static int find(eqr_ctx *ctx, const char *name) {
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        if (strcmp(eqr_param_name(ctx, i), name) == 0) return i;
    return -1;
}

/* Entry `name` of b holds exactly what it holds in a: data and every
 * optimizer slot (opt may be NULL on both sides). */
static void assert_same_entry(eqr_ctx *a, eqr_optim *oa, eqr_ctx *b, eqr_optim *ob,
                              const char *name) {
    int i = find(a, name), j = find(b, name);
    assert_true(i >= 0 && j >= 0);
    eqr_tensor *ta = eqr_param_at(a, i), *tb = eqr_param_at(b, j);
    assert_int_equal(ta->numel, tb->numel);
    assert_memory_equal(ta->data, tb->data, (size_t)ta->numel * sizeof(float));
    if (!oa) return;
    int slots = (int)(eqr_optim_num_state_floats(oa) / eqr_param_num_scalars(a));
    assert_int_equal(eqr_optim_num_state_floats(ob), slots * eqr_param_num_scalars(b));
    for (int k = 0; k < slots; k++)
        assert_memory_equal(eqr_optim_state(oa) + k * eqr_param_num_scalars(a) + eqr_param_offset(a, i),
                            eqr_optim_state(ob) + k * eqr_param_num_scalars(b) + eqr_param_offset(b, j),
                            (size_t)ta->numel * sizeof(float));
}

/* The BASE entries created in another order (so at other offsets). */
static eqr_ctx *build_reordered(uint64_t seed, int with_extra) {
    eqr_ctx *ctx = tu_ctx(seed);
    int64_t ws[2] = {3, 4}, bs[1] = {4}, fs[2] = {2, 2}, es[1] = {7};
    assert_non_null(eqr_param_create(ctx, "frozen", 2, fs, EQR_PARAM_FROZEN));
    if (with_extra) assert_non_null(eqr_param_create(ctx, "new.head", 1, es, 0));
    assert_non_null(eqr_param_create(ctx, "scale", 0, NULL, 0));
    assert_non_null(eqr_param_create(ctx, "running_var", 1, bs, EQR_PARAM_BUFFER));
    assert_non_null(tu_input(ctx, "w", 2, ws, 1.0f));
    assert_non_null(eqr_param_create(ctx, "b", 1, bs, EQR_PARAM_NO_DECAY));
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        eqr_tensor_normal(eqr_param_at(ctx, i), eqr_ctx_rng(ctx), 1.0f);
    return ctx;
}

static const char *const BASE_NAMES[5] = {"w", "b", "running_var", "scale", "frozen"};

static void test_load_by_name(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "byname.ckpt");
    const eqr_optim_kind kinds[3] = {EQR_OPTIM_SGD, EQR_OPTIM_ADAM, EQR_OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
        eqr_optim *oa = tu_ckpt_opt(a, kinds[k], 3);
        assert_int_equal(eqr_checkpoint_save(a, path, oa, NULL, 0), EQR_OK);
        eqr_ctx *b = build_reordered(2, 0);
        eqr_optim *ob = tu_ckpt_opt(b, kinds[k], 1);
        assert_int_not_equal(eqr_param_offset(b, find(b, "w")), eqr_param_offset(a, find(a, "w")));
        eqr_load_report rep;
        assert_int_equal(eqr_checkpoint_load_opts(b, path, ob, NULL, 0, NULL, &rep), EQR_OK);
        for (int i = 0; i < 5; i++) assert_same_entry(a, oa, b, ob, BASE_NAMES[i]);
        assert_int_equal(rep.loaded, 5);
        assert_int_equal(rep.missing + rep.unexpected + rep.skipped + rep.mismatched, 0);
        assert_int_equal(eqr_optim_num_steps(ob), 3);
        assert_memory_equal(eqr_ctx_rng(a), eqr_ctx_rng(b), sizeof(eqr_rng));
        eqr_optim_destroy(ob);
        eqr_ctx_destroy(b);
        eqr_optim_destroy(oa);
        eqr_ctx_destroy(a);
    }
    remove(path);
}

typedef struct seen {
    int n[3];
    char names[3][8][64];
    int logs;
    char log[512];
} seen;

static void on_name(eqr_load_event what, const char *name, void *user) {
    seen *s = user;
    assert_true(what >= EQR_LOAD_MISSING && what <= EQR_LOAD_SKIPPED);
    if (s->n[what] < 8) snprintf(s->names[what][s->n[what]], 64, "%s", name);
    s->n[what]++;
}

static void on_log(eqr_log_level level, const char *msg, void *user) {
    seen *s = user;
    if (level != EQR_LOG_INFO) return;
    s->logs++;
    snprintf(s->log, sizeof s->log, "%s", msg);
}

static int has_name(const seen *s, eqr_load_event what, const char *name) {
    for (int i = 0; i < s->n[what] && i < 8; i++)
        if (strcmp(s->names[what][i], name) == 0) return 1;
    return 0;
}

static void test_partial_load(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "partial.ckpt");
    /* file: BASE (w, b, running_var, scale, frozen) with Adam state */
    eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
    eqr_optim *oa = tu_ckpt_opt(a, EQR_OPTIM_ADAM, 2);
    uint64_t ca[2] = {5, 6};
    assert_int_equal(eqr_checkpoint_save(a, path, oa, ca, 2), EQR_OK);

    /* model: lacks "frozen", has "extra": strict refuses with both names */
    tu_ckpt_spec sp = TU_CKPT_BASE;
    sp.drop_last = 1;
    sp.extra = 1;
    tu_ckpt_target t = tu_ckpt_make_target(&sp, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, path, 2, EQR_ERR_MISMATCH, "'extra' [2]", "'frozen' [2,2]", "partial");

    /* partial: loads the four shared names, keeps "extra" and its moments */
    int ie = find(t.ctx, "extra");
    eqr_tensor *extra = eqr_param_at(t.ctx, ie);
    float keep[2], keep_m[2];
    memcpy(keep, extra->data, sizeof keep);
    memcpy(keep_m, eqr_optim_state(t.opt) + eqr_param_offset(t.ctx, ie), sizeof keep_m);
    seen s;
    memset(&s, 0, sizeof s);
    eqr_ctx_set_log(t.ctx, on_log, &s);
    eqr_load_opts lo = {.mode = EQR_LOAD_PARTIAL, .on_name = on_name, .user = &s};
    eqr_load_report rep;
    memset(&rep, 0x55, sizeof rep);
    if (eqr_checkpoint_load_opts(t.ctx, path, t.opt, t.counters, 2, &lo, &rep) != EQR_OK)
        fail_msg("partial load: %s", eqr_error_message(t.ctx));
    for (int i = 0; i < 4; i++) assert_same_entry(a, oa, t.ctx, t.opt, BASE_NAMES[i]);
    assert_memory_equal(extra->data, keep, sizeof keep);
    assert_memory_equal(eqr_optim_state(t.opt) + eqr_param_offset(t.ctx, ie), keep_m, sizeof keep_m);
    assert_int_equal(eqr_optim_num_steps(t.opt), 2);
    assert_memory_equal(t.counters, ca, sizeof ca);
    assert_int_equal(rep.loaded, 4);
    assert_int_equal(rep.missing, 1);
    assert_int_equal(rep.unexpected, 1);
    assert_int_equal(rep.skipped, 0);
    assert_int_equal(rep.mismatched, 0);
    assert_string_equal(rep.missing_names[0], "extra");
    assert_string_equal(rep.unexpected_names[0], "frozen");
    assert_int_equal(s.n[EQR_LOAD_MISSING], 1);
    assert_int_equal(s.n[EQR_LOAD_UNEXPECTED], 1);
    assert_int_equal(s.n[EQR_LOAD_SKIPPED], 0);
    assert_true(has_name(&s, EQR_LOAD_MISSING, "extra"));
    assert_true(has_name(&s, EQR_LOAD_UNEXPECTED, "frozen"));
    assert_int_equal(s.logs, 1);
    assert_non_null(strstr(s.log, "loaded 4"));
    assert_non_null(strstr(s.log, "'extra'"));
    assert_non_null(strstr(s.log, "'frozen'"));
    tu_ckpt_free_target(&t);

    /* partial with a shape difference is still refused, memory unchanged */
    sp = TU_CKPT_BASE;
    sp.wcols = 5;
    sp.extra = 1;
    tu_ckpt_target u = tu_ckpt_make_target(&sp, EQR_OPTIM_ADAM);
    tu_ckpt_snap su = tu_ckpt_take_snap(u.ctx, u.opt, u.counters, 3);
    assert_int_equal(eqr_checkpoint_load_opts(u.ctx, path, u.opt, u.counters, 2, &lo, &rep),
                     EQR_ERR_MISMATCH);
    tu_assert_error(u.ctx, EQR_ERR_MISMATCH, "'w' [3,4] in the file, [3,5] in the model");
    assert_int_equal(rep.mismatched, 1);
    tu_ckpt_assert_snap(&su, u.ctx, u.opt, u.counters, 3);
    tu_ckpt_free_snap(&su);

    /* skip patterns: strict everywhere else; "fro*" on the file side and
     * "*tra" on the model side make the sets agree */
    const char *pats[2] = {"fro*", "*tra"};
    sp.wcols = 4;
    sp.drop_last = 1;
    tu_ckpt_target v = tu_ckpt_make_target(&sp, EQR_OPTIM_ADAM);
    memset(&s, 0, sizeof s);
    eqr_load_opts ls = {.skip = pats, .nskip = 2, .on_name = on_name, .user = &s};
    if (eqr_checkpoint_load_opts(v.ctx, path, v.opt, v.counters, 2, &ls, &rep) != EQR_OK)
        fail_msg("skip load: %s", eqr_error_message(v.ctx));
    for (int i = 0; i < 4; i++) assert_same_entry(a, oa, v.ctx, v.opt, BASE_NAMES[i]);
    assert_int_equal(rep.loaded, 4);
    assert_int_equal(rep.skipped, 2);
    assert_int_equal(rep.missing + rep.unexpected, 0);
    assert_int_equal(s.n[EQR_LOAD_SKIPPED], 2);
    assert_true(has_name(&s, EQR_LOAD_SKIPPED, "extra"));
    assert_true(has_name(&s, EQR_LOAD_SKIPPED, "frozen"));
    /* a pattern that skips too little leaves a strict load failing */
    ls.nskip = 1;
    tu_ckpt_snap sv = tu_ckpt_take_snap(v.ctx, v.opt, v.counters, 3);
    assert_int_equal(eqr_checkpoint_load_opts(v.ctx, path, v.opt, v.counters, 2, &ls, NULL),
                     EQR_ERR_MISMATCH);
    tu_assert_error(v.ctx, EQR_ERR_MISMATCH, "1 not in the file: 'extra'");
    tu_ckpt_assert_snap(&sv, v.ctx, v.opt, v.counters, 3);
    tu_ckpt_free_snap(&sv);
    /* bad options */
    eqr_load_opts bad = {.mode = (eqr_load_mode)7};
    assert_int_equal(eqr_checkpoint_load_opts(v.ctx, path, v.opt, v.counters, 2, &bad, NULL),
                     EQR_ERR_ARG);
    tu_assert_error(v.ctx, EQR_ERR_ARG, "load mode");
    bad = (eqr_load_opts){.nskip = 1};
    assert_int_equal(eqr_checkpoint_load_opts(v.ctx, path, v.opt, v.counters, 2, &bad, NULL),
                     EQR_ERR_ARG);
    tu_assert_error(v.ctx, EQR_ERR_ARG, "skip");
    const char *empty[1] = {""};
    bad = (eqr_load_opts){.skip = empty, .nskip = 1};
    assert_int_equal(eqr_checkpoint_load_opts(v.ctx, path, v.opt, v.counters, 2, &bad, NULL),
                     EQR_ERR_ARG);
    tu_assert_error(v.ctx, EQR_ERR_ARG, "empty");
    tu_ckpt_free_target(&v);
    tu_ckpt_free_target(&u);
    eqr_optim_destroy(oa);
    eqr_ctx_destroy(a);
    remove(path);
}

/* A strict refusal lists the first few names of each kind and the counts. */
static void test_strict_lists_names(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "many.ckpt");
    eqr_ctx *a = tu_ctx(1);
    int64_t s1[1] = {2};
    char nm[32];
    for (int i = 0; i < 6; i++) {
        snprintf(nm, sizeof nm, "old%d", i);
        assert_non_null(eqr_param_create(a, nm, 1, s1, 0));
    }
    assert_int_equal(eqr_checkpoint_save(a, path, NULL, NULL, 0), EQR_OK);
    eqr_ctx *b = tu_ctx(2);
    for (int i = 0; i < 5; i++) {
        snprintf(nm, sizeof nm, "new%d", i);
        assert_non_null(eqr_param_create(b, nm, 1, s1, 0));
    }
    eqr_load_report rep;
    assert_int_equal(eqr_checkpoint_load_opts(b, path, NULL, NULL, 0, NULL, &rep), EQR_ERR_MISMATCH);
    const char *msg = eqr_error_message(b);
    assert_non_null(strstr(msg, "5 not in the file: 'new0' [2], 'new1' [2], 'new2' [2], ..."));
    assert_non_null(strstr(msg, "6 not in the model: 'old"));
    assert_int_equal(rep.missing, 5);
    assert_int_equal(rep.unexpected, 6);
    assert_int_equal(rep.loaded, 5 - 5);
    assert_string_equal(rep.missing_names[3], "new3");
    /* the report keeps the first EQR_LOAD_REPORT_NAMES names of the file in file order */
    assert_string_equal(rep.unexpected_names[0], "old0");
    assert_string_equal(rep.unexpected_names[EQR_LOAD_REPORT_NAMES - 1], "old3");
    eqr_ctx_destroy(b);
    eqr_ctx_destroy(a);
    remove(path);
}

/* A file written by the library before loading went by name (format 1, see
 * tests/data/make_ckpt_v1.c): loads by name into a model built in another
 * order, Adam moments included, at the old offsets' 16-float alignment. */
static void test_version1_file(void **state) {
    (void)state;
    const char *path = EQR_TEST_DATA_DIR "/ckpt_v1.ckpt";
    static const char *const names[4] = {"enc.weight", "enc.bias", "bn.running_mean",
                                         "head.weight"};
    eqr_ctx *ctx = tu_ctx(9);
    int64_t s0[2] = {3, 5}, s1[1] = {5}, s3[2] = {2, 5};
    assert_non_null(eqr_param_create(ctx, "head.weight", 2, s3, 0));
    assert_non_null(eqr_param_create(ctx, "bn.running_mean", 1, s1, EQR_PARAM_BUFFER));
    assert_non_null(eqr_param_create(ctx, "enc.bias", 1, s1, EQR_PARAM_NO_DECAY));
    assert_non_null(eqr_param_create(ctx, "enc.weight", 2, s0, 0));
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAM, .lr = 0.5f};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    uint64_t c[2] = {0, 0};
    if (eqr_checkpoint_load(ctx, path, opt, c, 2) != EQR_OK)
        fail_msg("version 1 file: %s", eqr_error_message(ctx));
    const float *st = eqr_optim_state(opt);
    int64_t total = eqr_param_num_scalars(ctx);
    for (int p = 0; p < 4; p++) {
        int i = find(ctx, names[p]);
        eqr_tensor *t = eqr_param_at(ctx, i);
        int64_t off = eqr_param_offset(ctx, i);
        for (int64_t e = 0; e < t->numel; e++) {
            assert_true(t->data[e] == (float)(100 * p + e) + 0.5f);
            assert_true(st[off + e] == -(float)(100 * p + e) - 0.25f);
            assert_true(st[total + off + e] == 1000.0f + (float)(100 * p + e));
        }
    }
    assert_int_equal(eqr_optim_num_steps(opt), 7);
    assert_true(eqr_optim_lr(opt) == 0.0125f);
    for (int k = 0; k < 4; k++) assert_int_equal(eqr_ctx_rng(ctx)->s[k], (uint64_t)k + 1);
    assert_int_equal(c[0], 11);
    assert_int_equal(c[1], 22);
    eqr_optim_destroy(opt);
    /* and a version 1 file is matched strictly like any other */
    eqr_ctx *b = tu_ctx(9);
    assert_non_null(eqr_param_create(b, "enc.weight", 2, s0, 0));
    assert_int_equal(eqr_checkpoint_load(b, path, NULL, c, 2), EQR_ERR_MISMATCH);
    tu_assert_error(b, EQR_ERR_MISMATCH, "3 not in the model");
    eqr_ctx_destroy(b);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_by_name),
        cmocka_unit_test(test_partial_load),
        cmocka_unit_test(test_strict_lists_names),
        cmocka_unit_test(test_version1_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
