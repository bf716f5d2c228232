/* hostile_stdout: writes MIB mebibytes (default 256) to stdout, or to stderr with "stderr",
 * ignoring write errors, then exits 0. Expected outcome: Exited(0) with the capture truncated
 * at the sandbox's cap (writes past it fail with EIO inside the guest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    FILE *out = argc > 2 && strcmp(argv[2], "stderr") == 0 ? stderr : stdout;
    static char line[1 << 16];
    memset(line, 'A', sizeof line);
    line[sizeof line - 1] = '\n';
    for (unsigned long i = 0; i < mib * 16; i++) fwrite(line, 1, sizeof line, out);
    return 0;
}
