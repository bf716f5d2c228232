/* hostile_escape: tries to leave the preopened directories and to modify /inputs. Prints one
 * line per attempt, "NAME: OK" or "NAME: ERRNO" (symbolic), so a test can assert each result.
 * Never fails itself: the exit code is 0 whatever the results.
 *
 * Usage: hostile_escape INPUT_FILE   (an existing file under /inputs, e.g. /inputs/data.txt)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errname.h"

static void report(const char *name, int rc) {
    printf("%s: %s\n", name, rc < 0 ? errname(errno) : "OK");
}

static int try_open(const char *path, int flags) {
    errno = 0;
    int fd = open(path, flags, 0644);
    if (fd >= 0) close(fd);
    return fd;
}

static int try_read(const char *path) {
    errno = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *input = argc > 1 ? argv[1] : "/inputs/data.txt";
    report("read_dotdot_from_inputs", try_read("/inputs/../../../../etc/passwd"));
    report("read_dotdot_from_outputs", try_read("/outputs/../../../../etc/passwd"));
    report("read_absolute_outside", try_read("/etc/passwd"));
    report("create_dotdot_from_outputs", try_open("/outputs/../escaped.txt", O_WRONLY | O_CREAT));
    errno = 0;
    report("opendir_root", opendir("/") ? 0 : -1);

    errno = 0;
    report("symlink_absolute_create", symlink("/etc/passwd", "/outputs/link_abs"));
    report("symlink_absolute_follow", try_read("/outputs/link_abs"));
    errno = 0;
    report("symlink_relative_create", symlink("../../../../etc/passwd", "/outputs/link_rel"));
    report("symlink_relative_follow", try_read("/outputs/link_rel"));
    errno = 0;
    report("symlink_dir_create", symlink("..", "/outputs/up"));
    report("symlink_dir_write_through", try_open("/outputs/up/escaped.txt", O_WRONLY | O_CREAT));

    report("inputs_create", try_open("/inputs/new.txt", O_WRONLY | O_CREAT));
    report("inputs_write_existing", try_open(input, O_WRONLY));
    report("inputs_truncate_existing", try_open(input, O_RDWR | O_TRUNC));
    errno = 0;
    report("inputs_unlink", unlink(input));
    errno = 0;
    report("inputs_mkdir", mkdir("/inputs/newdir", 0755));
    errno = 0;
    report("inputs_rename_to_outputs", rename(input, "/outputs/moved.txt"));
    errno = 0;
    report("inputs_hardlink_to_outputs", link(input, "/outputs/hardlink.txt"));
    report("inputs_read", try_read(input));

    report("outputs_create", try_open("/outputs/ok.txt", O_WRONLY | O_CREAT));
    return 0;
}
