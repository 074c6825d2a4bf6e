// SPDX-License-Identifier: GPL-2.0
/* kmm_user: depends on kmm_lib through a symbol, see kmm_lib.c. */
#include <linux/init.h>
#include <linux/module.h>

int kmm_lib_answer(void);

static int __init kmm_user_init(void)
{
	pr_info("kmm_user: loaded answer=%d\n", kmm_lib_answer());
	return 0;
}

static void __exit kmm_user_exit(void)
{
	pr_info("kmm_user: unloaded\n");
}

module_init(kmm_user_init);
module_exit(kmm_user_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("kmm-worker test module using a symbol of kmm_lib");
MODULE_VERSION("1.0");
