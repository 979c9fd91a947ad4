/* Thread-local churn as a program that writes every byte of its objects (up to 1 KiB; larger
 * ones a word per page) and reads them all back before freeing them: the same sequence as
 * churn.c, with the program's own memory traffic in the time. */
#define CHURN_FILL fill_object
#define CHURN_CHECK check_object
#include "churn.h"

int main(int argc, char **argv)
{
    return churn_main(argc, argv);
}
