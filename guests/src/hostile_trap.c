/* hostile_trap: dies in the way named by argv[1]:
 *   abort (default) -> abort()              expected Trapped ("wasm trap: wasm `unreachable`...")
 *   unreachable     -> __builtin_trap()     expected Trapped
 *   divzero         -> integer division by zero      expected Trapped
 *   oob             -> load outside linear memory    expected Trapped
 *   exit42          -> exit(42)             expected Exited(42)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "abort";
    printf("dying by %s\n", how);
    fflush(stdout);
    if (strcmp(how, "unreachable") == 0) __builtin_trap();
    if (strcmp(how, "divzero") == 0) {
        /* Both operands volatile: clang turns 1/x into a compare-and-select, which never traps. */
        volatile int num = 7, zero = 0;
        return num / zero;
    }
    if (strcmp(how, "oob") == 0) {
        volatile int *far = (volatile int *)(unsigned long)0xfffffff0u;
        return *far;
    }
    if (strcmp(how, "exit42") == 0) exit(42);
    abort();
}
