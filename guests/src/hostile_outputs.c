/* hostile_outputs: an output file bomb, never stops on its own.
 *   default: appends 1 MiB blocks to /outputs/bomb.bin forever
 *   "many":  creates empty files /outputs/f0, /outputs/f1, ... forever
 * Write errors are ignored. Expected outcome: OutputLimit.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "many") == 0) {
        for (unsigned long i = 0;; i++) {
            char path[64];
            snprintf(path, sizeof path, "/outputs/f%lu", i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) close(fd);
        }
    }
    static char block[1 << 20];
    memset(block, 'B', sizeof block);
    int fd = open("/outputs/bomb.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (;;) (void)write(fd, block, sizeof block);
}
