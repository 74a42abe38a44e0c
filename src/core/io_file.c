/* Opening input files for the readers (IDX, checkpoints): one place that
 * refuses directories and other non-regular files with a message saying so,
 * and reports the file's size, so no reader allocates more than its input
 * can hold or trusts ftell on something that is not a file. */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
