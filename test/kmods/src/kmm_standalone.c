// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_standalone: no parameters, no symbols shared with any other module.
 * Paired with kmm_hello it proves modulesLoadingOrder: nothing but the
 * declared order decides which one the kernel sees first.
 */
#include <linux/init.h>
#include <linux/module.h>

static int __init kmm_standalone_init(void)
{
	pr_info("kmm_standalone: loaded\n");
	return 0;
}

static void __exit kmm_standalone_exit(void)
{
	pr_info("kmm_standalone: unloaded\n");
}

module_init(kmm_standalone_init);
module_exit(kmm_standalone_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("kmm-worker test module without parameters or dependencies");
MODULE_VERSION("1.0");
