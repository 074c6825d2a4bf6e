// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_lib: exports a symbol used by kmm_user, so modprobe has a real
 * dependency (from depmod's modules.dep) to resolve and to unload last.
 */
#include <linux/init.h>
#include <linux/module.h>

int kmm_lib_answer(void)
{
	return 42;
}
EXPORT_SYMBOL_GPL(kmm_lib_answer);

static int __init kmm_lib_init(void)
{
	pr_info("kmm_lib: loaded\n");
	return 0;
}

static void __exit kmm_lib_exit(void)
{
	pr_info("kmm_lib: unloaded\n");
}

module_init(kmm_lib_init);
module_exit(kmm_lib_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("kmm-worker test module exporting a symbol");
MODULE_VERSION("1.0");
