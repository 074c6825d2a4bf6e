// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_hello: the basic load/unload subject. Its two parameters let a test
 * prove that kmm-worker passed `parameters` through to the kernel: the values
 * show up in /sys/module/kmm_hello/parameters/ and in the load message.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static int count;
module_param(count, int, 0644);
MODULE_PARM_DESC(count, "integer parameter, echoed at load and unload");

static char *greeting = "hello";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "string parameter, echoed at load");

static int __init kmm_hello_init(void)
{
	pr_info("kmm_hello: loaded count=%d greeting=%s\n", count, greeting);
	return 0;
}

static void __exit kmm_hello_exit(void)
{
	pr_info("kmm_hello: unloaded count=%d\n", count);
}

module_init(kmm_hello_init);
module_exit(kmm_hello_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("kmm-worker test module with an int and a string parameter");
MODULE_VERSION("1.0");
