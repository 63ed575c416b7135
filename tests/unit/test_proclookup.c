/*
 * Unit tests for the budget of files a user's lookups may hash while they wait: within
 * PROCLOOKUP_HASH_BUDGET a minute per user, each user on their own, a new minute
 * starting afresh, and a bounded table whatever number of users comes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/proclookup.h"

#define MIB (1024ull * 1024)

/* One user: files up to the budget pass, the next does not, until a minute has gone. */
static void test_budget_per_minute(void **state)
{
    struct proclookup_budget b;

    (void)state;
    memset(&b, 0, sizeof(b));
    assert_true(proclookup_budget_take(&b, 1000, 256 * MIB, 1000));
    assert_true(proclookup_budget_take(&b, 1000, 255 * MIB, 2000));
    assert_false(proclookup_budget_take(&b, 1000, 2 * MIB, 3000));
    assert_true(proclookup_budget_take(&b, 1000, 1 * MIB, 4000)); /* exactly the budget */
    assert_false(proclookup_budget_take(&b, 1000, 1, 60999));
    assert_true(proclookup_budget_take(&b, 1000, 256 * MIB, 61000)); /* a new minute */
}

/* Another user's budget is their own. */
static void test_budget_per_user(void **state)
{
    struct proclookup_budget b;

    (void)state;
    memset(&b, 0, sizeof(b));
    assert_true(proclookup_budget_take(&b, 1000, PROCLOOKUP_HASH_BUDGET, 0));
    assert_false(proclookup_budget_take(&b, 1000, 1, 10));
    assert_true(proclookup_budget_take(&b, 1001, 100 * MIB, 10));
    assert_true(proclookup_budget_take(&b, 0, 100 * MIB, 10));
}

/* More users than slots: the oldest is forgotten (it starts afresh), the table holds. */
static void test_budget_bounded(void **state)
{
    struct proclookup_budget b;

    (void)state;
    memset(&b, 0, sizeof(b));
    assert_true(proclookup_budget_take(&b, 1, PROCLOOKUP_HASH_BUDGET, 0));
    assert_false(proclookup_budget_take(&b, 1, 1, 1));
    for (uint32_t uid = 2; uid < 2 + PROCLOOKUP_BUDGET_USERS; uid++)
        assert_true(proclookup_budget_take(&b, uid, 1, 2));
    assert_true(proclookup_budget_take(&b, 1, 1, 3)); /* pushed out, then back afresh */
    assert_true(b.next < PROCLOOKUP_BUDGET_USERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_per_minute),
        cmocka_unit_test(test_budget_per_user),
        cmocka_unit_test(test_budget_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
