// SPDX-License-Identifier: GPL-2.0
/*
 * An out-of-tree module named like the kernel's in-tree drivers/net/dummy.ko.
 * It stands for a vendor driver replacing an in-tree one: its srcversion
 * differs from the in-tree build's, which is how a test tells which of the two
 * the kernel runs (DESIGN: inTreeModulesToRemove). It creates no netdevice.
 */
#include <linux/init.h>
#include <linux/module.h>

static int __init kmm_dummy_init(void)
{
	pr_info("dummy: out-of-tree kmm-worker test build loaded\n");
	return 0;
}

static void __exit kmm_dummy_exit(void)
{
	pr_info("dummy: out-of-tree kmm-worker test build unloaded\n");
}

module_init(kmm_dummy_init);
module_exit(kmm_dummy_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("out-of-tree stand-in for the in-tree dummy network driver");
MODULE_VERSION("1.0-kmm-oot");
