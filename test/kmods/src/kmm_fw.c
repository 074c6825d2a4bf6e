// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_fw: refuses to load unless the kernel's firmware loader finds its file.
 * It only loads when kmm-worker has copied the image's firmware to the host
 * and pointed firmware_class.path at it, so a successful load proves both.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/firmware.h>
#include <linux/platform_device.h>

static char *fw_name = "kmm-test/kmm_fw.bin";
module_param(fw_name, charp, 0444);
MODULE_PARM_DESC(fw_name, "firmware file to request, relative to the firmware search path");

static struct platform_device *pdev;

static int __init kmm_fw_init(void)
{
	const struct firmware *fw;
	int ret;

	pdev = platform_device_register_simple("kmm_fw", -1, NULL, 0);
	if (IS_ERR(pdev))
		return PTR_ERR(pdev);
	ret = request_firmware(&fw, fw_name, &pdev->dev);
	if (ret) {
		pr_err("kmm_fw: request_firmware(%s) failed: %d\n", fw_name, ret);
		platform_device_unregister(pdev);
		return ret;
	}
	pr_info("kmm_fw: got firmware %s size=%zu head=%*pE\n", fw_name, fw->size,
		(int)min_t(size_t, fw->size, 16), fw->data);
	release_firmware(fw);
	return 0;
}

static void __exit kmm_fw_exit(void)
{
	platform_device_unregister(pdev);
	pr_info("kmm_fw: unloaded\n");
}

module_init(kmm_fw_init);
module_exit(kmm_fw_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("kmm-worker tests");
MODULE_DESCRIPTION("kmm-worker test module that needs a firmware file to load");
MODULE_VERSION("1.0");
