/* hostile_loop: spins forever. Expected outcome: Timeout (no fuel limit) or OutOfFuel. */
int main(void) {
    volatile unsigned long spins = 0;
    for (;;) spins++;
}
