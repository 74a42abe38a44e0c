/* Files: opening input files for the readers (IDX, checkpoints) in one place
 * that refuses directories and other non-regular files with a message saying
 * so and reports the file's size, so no reader allocates more than its input
 * can hold or trusts ftell on something that is not a file; and the one
 * atomic writer every output file goes through. */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

eqr_status eqr__open_regular(eqr_ctx *ctx, const char *fn, const char *path, int *fd_out,
                             int64_t *size_out) {
    *fd_out = -1;
    *size_out = 0;
    char es[128];
    /* O_NONBLOCK: opening a FIFO without a writer must not hang */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        if (strerror_r(errno, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", errno);
        return eqr__fail(ctx, EQR_ERR_IO, "%s: cannot open '%s': %s", fn, path, es);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        if (strerror_r(errno, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", errno);
        close(fd);
        return eqr__fail(ctx, EQR_ERR_IO, "%s: cannot stat '%s': %s", fn, path, es);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return eqr__fail(ctx, EQR_ERR_IO, "%s: '%s' is %s, not a regular file", fn, path,
                         S_ISDIR(sb.st_mode) ? "a directory" : "a device, FIFO or socket");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    *size_out = (int64_t)sb.st_size;
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

eqr_status eqr__write_atomic(eqr_ctx *ctx, const char *fn, const char *path, eqr__write_fn w,
                             void *user) {
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "%s: path is empty", fn);
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
        errno = 0;
        if (w(f, user) != 0 || ferror(f)) {
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
        if (strerror_r(err, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", err);
        st = eqr__fail(ctx, EQR_ERR_IO, "%s: cannot %s '%s' (saving '%s'): %s", fn, what, tmp,
                       path, es);
    } else {
        sync_parent_dir(path);
    }
    free(tmp);
    return st;
}

eqr_status eqr_path_writable(eqr_ctx *ctx, const char *path) {
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 1, path)) return ctx->status;
    char es[128];
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return eqr__fail(ctx, EQR_ERR_IO, "'%s': is a directory, expected a file path", path);
        if (!S_ISREG(sb.st_mode))
            return eqr__fail(ctx, EQR_ERR_IO, "'%s': not a regular file", path);
        if (access(path, W_OK) != 0) {
            if (strerror_r(errno, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", errno);
            return eqr__fail(ctx, EQR_ERR_IO, "'%s': the file is not writable (%s)", path, es);
        }
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) return eqr__fail(ctx, EQR_ERR_IO, "'%s': path too long", path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eqr__fail(ctx, EQR_ERR_IO, "'%s': no such directory '%s'", path, dir);
    if (access(dir, W_OK | X_OK) != 0) {
        if (strerror_r(errno, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", errno);
        return eqr__fail(ctx, EQR_ERR_IO, "'%s': directory '%s' is not writable (%s)", path, dir,
                         es);
    }
    return EQR_OK;
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
        if (err) {
            if (strerror_r(err, es, sizeof es) != 0) snprintf(es, sizeof es, "error %d", err);
        } else {
            snprintf(es, sizeof es, "file %s while reading", got < (size_t)sz ? "shrank" : "grew");
        }
        free(buf);
        return eqr__fail(ctx, EQR_ERR_IO, "%s: cannot read '%s': %s", fn, path, es);
    }
    buf[sz] = 0; /* text readers may treat it as a string */
    *out = buf;
    *len = (size_t)sz;
    return EQR_OK;
}

static int write_buf(FILE *f, void *user) {
    const struct { const uint8_t *p; size_t n; } *b = user;
    return b->n && fwrite(b->p, 1, b->n, f) != b->n ? -1 : 0;
}

eqr_status eqr__write_atomic_buf(eqr_ctx *ctx, const char *fn, const char *path,
                                 const uint8_t *buf, size_t size) {
    struct { const uint8_t *p; size_t n; } b = {buf, size};
    return eqr__write_atomic(ctx, fn, path, write_buf, &b);
}
