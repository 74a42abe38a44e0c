/* Whole-file reads and atomic writes for the io formats (checkpoints,
 * safetensors): a reader never allocates more than the file holds, and a
 * writer never leaves a half-written file under the final name. */
#define _POSIX_C_SOURCE 200809L
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void errstr(int err, char *buf, size_t n) {
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "error %d", err);
}

eqr_status eqr__slurp(eqr_ctx *ctx, const char *fn, const char *path, uint8_t **out,
                      size_t *len) {
    char es[128];
    int fd;
    int64_t sz;
    eqr_status st = eqr__open_regular(ctx, fn, path, &fd, &sz);
    if (st) return st;
    uint8_t *buf = malloc((size_t)sz + 1);
    if (!buf) {
        close(fd);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot allocate %lld bytes for '%s'", fn,
                         (long long)sz, path);
    }
    size_t got = 0;
    int err = 0;
    /* one byte past the size: a file that grew is caught too */
    while (got < (size_t)sz + 1) {
        ssize_t r = read(fd, buf + got, (size_t)sz + 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (err || got != (size_t)sz) {
        if (err)
            errstr(err, es, sizeof es);
        else
            snprintf(es, sizeof es, "file %s while reading", got < (size_t)sz ? "shrank" : "grew");
        free(buf);
        return eqr__fail(ctx, EQR_ERR_IO, "%s: cannot read '%s': %s", fn, path, es);
    }
    *out = buf;
    *len = (size_t)sz;
    return EQR_OK;
}

/* Best effort: make the rename itself durable. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" */
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

eqr_status eqr__write_atomic(eqr_ctx *ctx, const char *fn, const char *path, const uint8_t *buf,
                             size_t size) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return eqr__fail(ctx, EQR_ERR_IO, "%s: '%s' is a directory, not a file", fn, path);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    const char *what = "create";
    int err = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err = errno;
    } else {
        if (fwrite(buf, 1, size, f) != size) {
            err = errno ? errno : EIO;
            what = "write";
        } else if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
            err = errno;
            what = "flush";
        }
        if (fclose(f) != 0 && !err) {
            err = errno;
            what = "close";
        }
        if (!err && rename(tmp, path) != 0) {
            err = errno;
            what = "rename to final name";
        }
        if (err) remove(tmp);
    }
    eqr_status st = EQR_OK;
    if (err) {
        char es[128];
        errstr(err, es, sizeof es);
        st = eqr__fail(ctx, EQR_ERR_IO, "%s: cannot %s '%s' (saving '%s'): %s", fn, what, tmp, path,
                       es);
    } else {
        sync_parent_dir(path);
    }
    free(tmp);
    return st;
}
