/* hostile_socket: tries the WASI preview 1 socket calls on file descriptors 0..10 and prints
 * "fd=N accept=ERR recv=ERR send=ERR shutdown=ERR". The sandbox grants no sockets, so every
 * call fails: ENOTSOCK on a descriptor that exists (stdio, the preopens), EBADF otherwise.
 */
#include <stdio.h>
#include <wasi/api.h>

#include "errname.h"

int main(void) {
    for (__wasi_fd_t fd = 0; fd <= 10; fd++) {
        __wasi_fd_t newfd;
        int accept = __wasi_sock_accept(fd, 0, &newfd);
        char buf[16];
        __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
        __wasi_size_t n;
        __wasi_roflags_t roflags;
        int recv = __wasi_sock_recv(fd, &iov, 1, 0, &n, &roflags);
        __wasi_ciovec_t ciov = {(const uint8_t *)"hello", 5};
        int send = __wasi_sock_send(fd, &ciov, 1, 0, &n);
        int shut = __wasi_sock_shutdown(fd, __WASI_SDFLAGS_RD | __WASI_SDFLAGS_WR);
        printf("fd=%u accept=%s recv=%s send=%s shutdown=%s\n", fd, errname(accept), errname(recv),
               errname(send), errname(shut));
    }
    return 0;
}
