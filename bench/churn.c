/* Thread-local churn with the allocator's cost in front: each object gets its first and
 * last word written and read back, as a program sets a header and a trailing field, so
 * what is timed is mostly malloc and free (churn_fill.c writes whole objects). */
#define CHURN_FILL fill_ends
#define CHURN_CHECK check_ends
#include "churn.h"

int main(int argc, char **argv)
{
    return churn_main(argc, argv);
}
