/* The stand-in for e2e-test-images/nonewprivs: installed setuid root, it prints
 * its effective uid, which stays the caller's when no_new_privs is set.
 * Built static by tools/critest/run.py. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
