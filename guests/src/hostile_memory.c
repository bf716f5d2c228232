/* hostile_memory: a memory growth bomb. Allocates and touches 1 MiB blocks until malloc fails
 * (the sandbox's memory limit makes memory.grow fail, so malloc returns NULL), then:
 *   default:    prints how much it got and calls abort()  (what most programs do)
 *   "graceful": prints how much it got and exits 0        (a program that handles it)
 * The pointers go into a volatile sink so the compiler cannot delete the allocations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

int main(int argc, char **argv) {
    int graceful = argc > 1 && strcmp(argv[1], "graceful") == 0;
    unsigned long mib = 0;
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) break;
        memset(p, (int)mib, 1 << 20);
        sink = p;
        mib++;
    }
    printf("malloc failed after %lu MiB\n", mib);
    fflush(stdout);
    if (graceful) return 0;
    abort();
}
